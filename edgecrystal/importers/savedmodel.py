"""`edgecrystal import savedmodel`: a TensorFlow SavedModel classifier into a bundle, including
one whose serving signature takes encoded image bytes and decodes them inside, as the public
MARCO model does (signature input `image_bytes`, a string; outputs `classes`, the class names,
and `scores`, normalised).

TensorRT and ONNX cannot take JPEG bytes, so the graph is cut after its decoding:

1. The signature's function is frozen (variables to constants, control flow kept functional).
2. The cut is the first tensor, downstream of an image-decoding op (DecodeJpeg, DecodeImage...,
   directly or inside a map_fn/While body), that is a batch of square 3-channel images
   [N, S, S, 3]: the decoded, resized pictures the network proper starts from.
3. A Placeholder takes the cut tensor's place and tf2onnx converts what lies between it and the
   scores (pixels -> network -> scores).
4. How the graph scales pixels on the way to the cut (uint8, or float 0..1, or -1..1...) is
   measured by decoding two flat-coloured images through the signature's own first part and
   fitting value = scale * pixel + offset per channel; the ONNX importer puts that scaling in
   front (onnx_import, the same checks as any ONNX model).
5. The class names come from the signature's string output (evaluated on a picture) and are
   mapped by name onto the bundle's classes (MARCO's Crystals/Other/Precipitate/Clear onto
   crystals/other/precipitate/clear); the scores are reordered to the bundle's order inside the
   ONNX graph.

Imports TensorFlow and tf2onnx: the train extra, never the runtime.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import DEFAULT_CLASSES
from ..errors import UsageError, one_line
from .onnx_import import ImportSummary, ModelSource, import_onnx
from .wrap import Normalisation

if TYPE_CHECKING:  # TensorFlow is loaded inside the functions that need it
    from types import ModuleType

    import tensorflow as tf
    from tensorflow.core.framework.graph_pb2 import GraphDef
    from tensorflow.types.experimental import ConcreteFunction

    from edgecrystal.converters.check_pictures import Parity

log = logging.getLogger(__name__)

DECODE_OPS = frozenset({"DecodeJpeg", "DecodeImage", "DecodePng", "DecodeBmp", "DecodeGif",
                        "DecodeAndCropJpeg", "DecodeWebP"})
CUT_NAME = "edgecrystal_pixels"
# Signature on bytes vs ONNX on the same decoded pixels: float rounding only.
TENSORFLOW_TOLERANCE = 1e-3
# Names a model may use for a bundle class (compared lower-case, trailing "s" ignored).
SYNONYMS = {"crystal": "crystals", "crystals": "crystals", "others": "other", "other": "other",
            "clear": "clear", "precipitate": "precipitate", "precipitates": "precipitate"}


@dataclass
class Cut:
    """Where the graph is cut and what the pixels look like there."""

    tensor: str  # name:index in the frozen graph
    size: int
    dtype: tf.DType
    input_ops: list[str]


def import_savedmodel(bundle: Path, model_dir: Path, *, classes: list[str] | None = None,
                      signature: str = "serving_default", input_size: int | None = None,
                      crop: str = "finder", finder: ModelSource | None = None,
                      force: bool = False,
                      log: Callable[[str], None] | None = None) -> ImportSummary:
    say = log or (lambda _m: None)
    function, input_key, outputs = load_signature(model_dir, signature)
    frozen = _freeze(function)
    score_key, class_key = _output_keys(outputs, signature)
    cut = find_cut(frozen, input_key, signature, input_size)
    say(f"cut after the decoding at {cut.tensor} ({cut.size}x{cut.size}x3 {cut.dtype.name})")
    scale, offset = measure_scaling(function, input_key, frozen, cut)
    norm = _normalisation(scale, offset)
    names = model_class_names(function, input_key, class_key)
    target = classes or _default_classes(names)
    order = map_classes(names, target)
    with tempfile.TemporaryDirectory(prefix="edgecrystal-import-") as tmp:
        onnx_path = Path(tmp) / "classifier.cut.onnx"
        convert_cut(frozen, cut, list(outputs), score_key, onnx_path)
        origin = {"format": "tensorflow savedmodel", "savedmodel": str(model_dir.resolve()),
                  "signature": signature, "signature_input": input_key,
                  "signature_outputs": sorted(outputs), "cut": cut.tensor,
                  "cut_dtype": cut.dtype.name, "measured_scaling": {
                      "scale": [float(v) for v in scale], "offset": [float(v) for v in offset]},
                  "model_classes": names, "class_order": order}
        source = ModelSource(onnx_path, norm, cut.size, "probabilities" if _is_softmax(
            function, input_key, score_key, cut.size) else "auto", origin, order)
        summary = import_onnx(bundle, source, target, crop=crop, finder=finder, force=force)
    check = check_against_tensorflow(bundle, function, input_key, score_key, order, cut.size)
    say(f"classes: model {names} -> bundle {target}; ONNX FP32 vs TensorFlow on "
        f"{check['images']} JPEGs: max diff {check['max_abs_diff']:.2g}")
    summary["classifier"]["tensorflow_check"] = check
    return summary


def check_against_tensorflow(bundle_path: Path, function: ConcreteFunction, input_key: str,
                             score_key: str, order: list[int] | None, size: int) -> Parity:
    """The signature itself on JPEG bytes vs the bundle's FP32 ONNX on the pixels TensorFlow
    decoded from the same bytes: the whole cut-convert-wrap chain in one number, recorded."""
    import cv2
    import onnxruntime as ort
    import tensorflow as tf

    from edgecrystal.converters.check_pictures import synthetic_wells

    from ..bundle import Bundle
    from ..errors import BundleError

    blobs = []
    for rgb in synthetic_wells(6, seed=21, size=size):
        ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        blobs.append(data.tobytes())
    want = function(**{input_key: tf.constant(blobs)})[score_key].numpy().astype(np.float64)
    if order is not None:
        want = want[:, order]
    pixels = np.stack([tf.io.decode_jpeg(b, channels=3).numpy() for b in blobs])
    bundle = Bundle.open(bundle_path)
    sess = ort.InferenceSession(str(bundle.onnx_variant("classifier", "fp32")),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {"pixels": pixels})[0].astype(np.float64)
    check: Parity = {"images": len(blobs), "max_abs_diff": float(np.abs(got - want).max()),
             "mean_abs_diff": float(np.abs(got - want).mean())}
    if check["max_abs_diff"] > TENSORFLOW_TOLERANCE:
        raise BundleError(f"the imported classifier differs from the SavedModel by "
                          f"{check['max_abs_diff']:.3g} on the same JPEGs (tolerance "
                          f"{TENSORFLOW_TOLERANCE:g}); the cut at "
                          f"{bundle.require('classifier')['imported'].get('cut')} is not where the "
                          "network starts")
    bundle.require("classifier")["imported"]["tensorflow_check"] = check
    bundle.save()
    return check


# ----------------------------------------------------------------- the signature
def _tensorflow() -> ModuleType:
    """TensorFlow, loaded without its start-up chatter (as the trainer loads it)."""
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        from ..models import _quiet_native_stderr

        with _quiet_native_stderr():
            import tensorflow  # noqa: F401
    import tensorflow as tf

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    # TF1-API deprecation notices from inside tf2onnx and graph_util: not the user's business.
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def load_signature(model_dir: Path,
                   signature: str) -> tuple[ConcreteFunction, str, dict[str, tf.TensorSpec]]:
    """(concrete function, its one input's key, {output key: TensorSpec})."""
    tf = _tensorflow()

    if not (model_dir / "saved_model.pb").is_file():
        raise UsageError(f"--classifier {model_dir} is not a SavedModel folder (no "
                         "saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(model_dir))
    except Exception as exc:  # TensorFlow raises many types here
        raise UsageError(f"{model_dir} does not load as a SavedModel: "
                         f"{one_line(exc)}") from None
    signatures = dict(loaded.signatures)
    if signature not in signatures:
        raise UsageError(f"{model_dir} has no signature {signature!r} (it has "
                         f"{', '.join(sorted(signatures)) or 'none'}); pass --signature")
    function = signatures[signature]
    # Keep the loaded object alive as long as the function (its variables live there).
    function._edgecrystal_owner = loaded
    inputs = function.structured_input_signature[1]
    if len(inputs) != 1:
        raise UsageError(f"signature {signature} takes {len(inputs)} inputs "
                         f"({', '.join(sorted(inputs))}); edgecrystal imports one image input")
    input_key = next(iter(inputs))
    return function, input_key, dict(function.structured_outputs)


def _output_keys(outputs: dict[str, tf.TensorSpec], signature: str) -> tuple[str, str | None]:
    import tensorflow as tf

    numeric = [k for k, spec in outputs.items() if spec.dtype.is_floating]
    strings = [k for k, spec in outputs.items() if spec.dtype == tf.string]
    score_key = "scores" if "scores" in numeric else (numeric[0] if len(numeric) == 1 else None)
    if score_key is None:
        raise UsageError(f"signature {signature} has no single float output to use as scores "
                         f"(outputs: {', '.join(sorted(outputs))})")
    class_key = "classes" if "classes" in strings else (strings[0] if strings else None)
    return score_key, class_key


def _freeze(function: ConcreteFunction) -> ConcreteFunction:
    """The signature as one GraphDef with constants for variables (While bodies kept)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(function, lower_control_flow=False)


# ----------------------------------------------------------------- finding the cut
def find_cut(frozen: ConcreteFunction, input_key: str, signature: str, asked: int | None) -> Cut:
    """The first batch of square RGB images downstream of the decoding (see the module doc)."""
    graph = frozen.graph
    graph_def = graph.as_graph_def()
    placeholder = _input_placeholder(frozen, input_key)
    input_ops = sorted({f"{op.type} ({op.name})" for op in _input_consumers(placeholder)})
    decoding_functions = _functions_with_decoding(graph_def)
    downstream_of_input = _downstream({placeholder.name}, graph)
    decoded = False
    for op in graph.get_operations():  # creation order is a topological order
        if op.name not in downstream_of_input:
            continue
        if op.type in DECODE_OPS or _calls(op, decoding_functions):
            decoded = True
        if not decoded:
            continue
        for tensor in op.outputs:
            size = _square_batch(tensor, asked)
            if size:
                return Cut(tensor.name, size, tensor.dtype, input_ops)
    what = ("no image decoding" if not decoded
            else "no batch of square 3-channel images after the decoding")
    raise UsageError(f"no cut found in signature {signature}: {what}; its input {input_key} "
                     f"feeds {', '.join(input_ops) or 'nothing'}")


def _input_consumers(op: tf.Operation) -> list[tf.Operation]:
    """The ops that use the signature's input, seen through the Identity ops TF puts between."""
    found = []
    for out in op.outputs:
        for consumer in out.consumers():
            if consumer.type == "Identity":
                found.extend(_input_consumers(consumer))
            else:
                found.append(consumer)
    return found


def _input_placeholder(frozen: ConcreteFunction, input_key: str) -> tf.Operation:
    placeholders = [t.op for t in frozen.inputs if t.dtype.name == "string"] or \
        [t.op for t in frozen.inputs]
    named = [op for op in placeholders if input_key in op.name]
    return (named or placeholders)[0]


def _functions_with_decoding(graph_def: GraphDef) -> set[str]:
    """Library functions that decode an image, themselves or through functions they call."""
    calls: dict[str, set[str]] = {}
    direct: set[str] = set()
    for function in graph_def.library.function:
        name = function.signature.name
        calls[name] = set()
        for node in function.node_def:
            if node.op in DECODE_OPS:
                direct.add(name)
            for attr in node.attr.values():
                if attr.HasField("func"):
                    calls[name].add(attr.func.name)
            calls[name].add(node.op)  # a node may call a library function by op name
    found = set(direct)
    changed = True
    while changed:
        changed = False
        for name, callees in calls.items():
            if name not in found and callees & found:
                found.add(name)
                changed = True
    return found


def _calls(op: tf.Operation, functions: set[str]) -> bool:
    if op.type in functions:
        return True
    for attr in op.node_def.attr.values():
        if attr.HasField("func") and attr.func.name in functions:
            return True
    return False


def _downstream(start: set[str], graph: tf.Graph) -> set[str]:
    reached = set(start)
    for op in graph.get_operations():
        if any(t.op.name in reached for t in op.inputs) or any(
                c.name in reached for c in op.control_inputs):
            reached.add(op.name)
    return reached


def _square_batch(tensor: tf.Tensor, asked: int | None) -> int | None:
    shape = tensor.shape
    if shape.rank != 4 or shape[3] != 3:
        return None
    if tensor.dtype.name not in ("uint8", "float32", "float16"):
        return None
    height, width = shape[1], shape[2]
    if height is None and width is None and asked:
        return asked
    if height is not None and height == width:
        return int(height)
    return None


# ----------------------------------------------------------------- measuring the scaling
def measure_scaling(function: ConcreteFunction, input_key: str, frozen: ConcreteFunction,
                    cut: Cut) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel scale and offset from decoded pixels to the cut tensor's values, fitted on
    two flat-coloured JPEGs run through the signature's own decoding (exact for flat colour)."""
    import cv2

    colours = np.array([[200, 100, 40], [40, 160, 230]], np.uint8)
    blobs, pixels = [], []
    for colour in colours:
        image = np.full((cut.size, cut.size, 3), colour, np.uint8)
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
        assert ok
        blobs.append(data.tobytes())
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        assert decoded is not None  # just encoded above
        pixels.append(decoded[..., ::-1].reshape(-1, 3).mean(axis=0))
    values = _cut_values(frozen, cut, blobs)
    px = np.array(pixels, np.float64)
    scale = (values[1] - values[0]) / (px[1] - px[0])
    offset = values[0] - scale * px[0]
    if np.any(np.abs(scale) < 1e-9):
        raise UsageError(f"the graph's pixels at {cut.tensor} do not follow the image's colour; "
                         "cannot import this signature")
    return scale.astype(np.float32), offset.astype(np.float32)


def _cut_values(frozen: ConcreteFunction, cut: Cut, blobs: list[bytes]) -> np.ndarray:
    """Mean value per channel of the cut tensor for each encoded image (one at a time)."""
    import tensorflow as tf

    graph_def = frozen.graph.as_graph_def()
    input_name = frozen.inputs[0].name
    results = []
    for blob in blobs:
        def run(data: tf.Tensor, gd: GraphDef = graph_def) -> tf.Tensor:
            return tf.graph_util.import_graph_def(gd, input_map={input_name: data},
                                                  return_elements=[cut.tensor])[0]

        wrapped = tf.compat.v1.wrap_function(run, [tf.TensorSpec([None], tf.string)])
        value = wrapped(tf.constant([blob])).numpy().astype(np.float64)
        results.append(value.reshape(-1, 3).mean(axis=0))
    return np.array(results)


def _normalisation(scale: np.ndarray, offset: np.ndarray) -> Normalisation:
    """value = pixel * scale + offset as mean/std in 0..255 units (std = 1/scale)."""
    std = tuple(float(1.0 / s) for s in scale)
    mean = tuple(float(-o / s) for o, s in zip(offset, scale, strict=True))
    # Whole pixel units (std 1, mean 0: uint8 or float 0..255) stay exactly that.
    if np.allclose(scale, 1.0, atol=1e-4) and np.allclose(offset, 0.0, atol=1e-2):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    elif all(v <= 1.0 for v in (*mean, *std)):
        # Values that small would read as 0..1 units; say the same in 0..1 units instead.
        mean = tuple(m / 255.0 for m in mean)
        std = tuple(s / 255.0 for s in std)
    return Normalisation(mean, std, "nhwc", False)  # type: ignore[arg-type]


def _is_softmax(function: ConcreteFunction, input_key: str, score_key: str, size: int) -> bool:
    """True when the signature's scores are probabilities (MARCO: "normalized scores")."""
    scores = _run_signature(function, input_key, size)[score_key]
    rows = np.asarray(scores, np.float64).reshape(len(scores), -1)
    return bool(np.all(rows >= 0) and np.all(np.abs(rows.sum(axis=1) - 1) < 1e-3))


def _run_signature(function: ConcreteFunction, input_key: str,
                   size: int) -> dict[str, np.ndarray]:
    import cv2
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    out = function(**{input_key: tf.constant([data.tobytes()])})
    return {k: v.numpy() for k, v in out.items()}


# ----------------------------------------------------------------- classes
def model_class_names(function: ConcreteFunction, input_key: str,
                      class_key: str | None) -> list[str]:
    if class_key is None:
        raise UsageError("the signature has no string output naming the classes; use "
                         "`edgecrystal import onnx` with --classes in the model's output order")
    names = _run_signature(function, input_key, 64)[class_key]
    row = np.asarray(names).reshape(-1, np.asarray(names).shape[-1])[0]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in row]


def _canonical(name: str) -> str:
    key = name.strip().lower()
    return SYNONYMS.get(key, key)


def _default_classes(names: list[str]) -> list[str]:
    canonical = [_canonical(n) for n in names]
    if sorted(canonical) == sorted(DEFAULT_CLASSES):
        return list(DEFAULT_CLASSES)
    return canonical


def map_classes(model_names: list[str], bundle_classes: list[str]) -> list[int] | None:
    """For each bundle class, the model's column; None when the orders already agree."""
    canonical = [_canonical(n) for n in model_names]
    order = []
    for cls in bundle_classes:
        if _canonical(cls) not in canonical:
            raise UsageError(f"bundle class {cls!r} is not among the model's classes "
                             f"({', '.join(model_names)})")
        order.append(canonical.index(_canonical(cls)))
    if len(order) != len(model_names):
        raise UsageError(f"the model has {len(model_names)} classes ({', '.join(model_names)}); "
                         f"--classes names {len(order)}")
    return None if order == list(range(len(order))) else order


# ----------------------------------------------------------------- conversion
def convert_cut(frozen: ConcreteFunction, cut: Cut, output_keys: list[str], score_key: str,
                out: Path) -> None:
    """tf2onnx on the graph between a new Placeholder at the cut and the scores."""
    import tensorflow as tf
    import tf2onnx

    from edgecrystal.converters.keras_to_onnx import patch_tf2onnx_numpy2
    from edgecrystal.converters.onnx_files import DEFAULT_OPSET

    patch_tf2onnx_numpy2()
    graph_def = frozen.graph.as_graph_def()
    score_tensor = _score_tensor(frozen, output_keys, score_key)
    cut_node = tf.compat.v1.NodeDef(name=CUT_NAME, op="Placeholder")
    cut_node.attr["dtype"].type = cut.dtype.as_datatype_enum
    cut_node.attr["shape"].shape.CopyFrom(
        tf.TensorShape([None, cut.size, cut.size, 3]).as_proto())
    rewired = tf.compat.v1.GraphDef()
    rewired.library.CopyFrom(graph_def.library)
    rewired.versions.CopyFrom(graph_def.versions)
    cut_op, _, cut_index = cut.tensor.partition(":")
    for node in graph_def.node:
        copy = rewired.node.add()
        copy.CopyFrom(node)
        for i, name in enumerate(copy.input):
            if _refers_to(name, cut_op, int(cut_index or 0)):
                copy.input[i] = CUT_NAME
    rewired.node.append(cut_node)
    pruned = tf.compat.v1.graph_util.extract_sub_graph(rewired, [score_tensor.split(":")[0]])
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            pruned, input_names=[f"{CUT_NAME}:0"], output_names=[score_tensor],
            opset=DEFAULT_OPSET)
    except Exception as exc:  # tf2onnx raises many types
        raise UsageError(f"tf2onnx could not convert the graph after the cut {cut.tensor}: "
                         f"{one_line(exc)}") from None
    out.write_bytes(proto.SerializeToString())


def _refers_to(name: str, op: str, index: int) -> bool:
    if name.startswith("^"):
        return False
    base, _, idx = name.partition(":")
    return base == op and int(idx or 0) == index


def _score_tensor(frozen: ConcreteFunction, output_keys: list[str], score_key: str) -> str:
    """The frozen graph's tensor for an output key: a signature's outputs are flattened in
    sorted key order, and freezing keeps that order."""
    return frozen.outputs[sorted(output_keys).index(score_key)].name
