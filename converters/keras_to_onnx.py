"""Keras -> ONNX (FP32), the source every precision variant and TensorRT engine is made from.

Keras 3's `Model.export(format="onnx")` refuses a model loaded from disk that was never called,
so the export traces a tf.function with an explicit input signature (uint8 NHWC, batch None)
that calls the model with training=False (inference-mode BatchNorm, no dropout) and hands it to
tf2onnx. The graph keeps the uint8 input "pixels" (TensorRT's ONNX parser imports UINT8 I/O
since 8.5, the oldest target) and the scaling layer inside the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from edgecrystal import PREPROCESS_VERSION
from edgecrystal.bundle import MODELS, Bundle
from edgecrystal.errors import BundleError, UsageError, one_line
from edgecrystal.interface import INPUT_NAME, MODEL_OUTPUTS

from .check_pictures import Parity, parity_batch
from .onnx_files import BATCH_DIM, DEFAULT_OPSET, OPSETS, onnx_rel, save_model, set_metadata

if TYPE_CHECKING:  # TensorFlow, Keras and onnx load inside the functions that need them
    import keras
    import onnx
    import tensorflow as tf

OUTPUTS = MODEL_OUTPUTS
# Sigmoid/softmax outputs in [0, 1]: FP32 export should match Keras to float rounding.
PARITY_TOLERANCE = 1e-3
# Bumped when the export recipe changes, so bundles re-export (part of the skip key).
EXPORTER_VERSION = "1"


class Exported(TypedDict, total=False):
    """What export_bundle did with one model."""

    action: str  # "exported" | "kept"
    file: str
    max_abs_diff: float | None  # None: a kept export whose parity was not recorded
    mean_abs_diff: float
    images: int


def export_bundle(
    bundle: Bundle,
    opset: int = DEFAULT_OPSET,
    models: tuple[str, ...] | list[str] = MODELS,
    *,
    images: list[np.ndarray] | None = None,
    force: bool = False,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Exported]:
    """Export each Keras model of the bundle to onnx/<model>.fp32.onnx, check it against Keras
    on preprocessed pictures (`images`: RGB uint8 well images; synthetic drops when None),
    register it in bundle["onnx"][model]["fp32"] and save the bundle.

    Skips a model whose Keras file hash, opset and exporter version match the registered export
    (unless `force`). Returns {model: {"action": "exported"|"kept", "file", "max_abs_diff"...}}.
    """
    if opset not in OPSETS:
        raise UsageError(f"opset {opset} is not supported (use {OPSETS.start}..{OPSETS.stop - 1})")
    results: dict[str, Exported] = {}
    present = [m for m in models if bundle.has(m)]
    if not present:
        raise BundleError(f"bundle {bundle.root} has no models to export (train one first)")
    for model in present:
        if bundle.is_imported(model):
            # `edgecrystal import` wrote and checked the FP32 ONNX: it is the source here.
            entry = bundle.variant(model, "fp32")
            if not entry or not (bundle.root / entry.get("file", "")).is_file():
                raise BundleError(f"the {model} of bundle {bundle.root} was imported but its "
                                  "FP32 ONNX is missing; import it again")
            results[model] = {"action": "kept", "file": entry["file"],
                              "max_abs_diff": entry.get("parity", {}).get("max_abs_diff")}
            continue
        keras_path = bundle.model_file(model)
        source_sha = bundle.register_file(str(keras_path.relative_to(bundle.root)))
        rel = onnx_rel(model, "fp32")
        entry = bundle.variant(model, "fp32")
        key = {"sha256_source": source_sha, "opset": opset, "exporter": EXPORTER_VERSION}
        if (not force and (bundle.root / rel).is_file()
                and all(entry.get(k) == v for k, v in key.items())
                and bundle.is_registered(rel)):
            results[model] = {"action": "kept", "file": rel,
                              "max_abs_diff": entry.get("parity", {}).get("max_abs_diff")}
            continue
        keras_model = _load_keras(keras_path)
        out = bundle.root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        export_model(keras_model, out, model, bundle.classes, opset)
        batch = parity_batch(bundle, model, images)
        diff = parity(keras_model, out, batch)
        if diff["max_abs_diff"] > tolerance:
            raise BundleError(
                f"exported {rel} differs from {keras_path.name} by {diff['max_abs_diff']:.3g} "
                f"(tolerance {tolerance:g}): the export is wrong, not kept")
        bundle.add_variant(model, "fp32", precision="fp32", backends=["onnxruntime", "tensorrt"],
                           key=key, source={"input": INPUT_NAME, "input_dtype": "uint8",
                                            "output": OUTPUTS[model]},
                           parity={"reference": "keras", **diff})
        results[model] = {"action": "exported", "file": rel, **diff}
        bundle.save()
    return results


def _load_keras(path: Path) -> keras.Model:
    from edgecrystal.models import load_model

    try:
        return load_model(path)
    except (ValueError, OSError, TypeError) as exc:
        raise BundleError(f"{path} is not a loadable Keras model: {one_line(exc)}") from None


def export_model(keras_model: keras.Model, out: Path, role: str, classes: list[str],
                 opset: int) -> None:
    """Trace `keras_model` (inference mode) and write an ONNX file with input "pixels" (uint8,
    dynamic batch), the role's named output, and edgecrystal metadata."""
    import tensorflow as tf
    import tf2onnx

    patch_tf2onnx_numpy2()
    shape = tuple(keras_model.inputs[0].shape[1:])
    spec = (tf.TensorSpec((None, *shape), tf.uint8, name=INPUT_NAME),)
    output = OUTPUTS[role]

    @tf.function(input_signature=spec)
    def forward(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        # A dict output names the ONNX output after its key.
        return {output: keras_model(pixels, training=False)}

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    _name_batch_dim(proto)
    set_metadata(proto, {
        "role": role, "classes": json.dumps(classes), "preprocess_version": PREPROCESS_VERSION,
        "input_size": str(shape[0]), "input_dtype": "uint8", "input_layout": "NHWC",
        "precision": "fp32", "exporter": f"tf2onnx {tf2onnx.__version__}",
    })
    import onnx

    onnx.checker.check_model(proto)
    save_model(proto, out)


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    """tf2onnx names the dynamic batch "unk__N"; give inputs and outputs one readable name."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def patch_tf2onnx_numpy2() -> None:
    # tf2onnx 1.17 still uses aliases numpy 2 removed; Keras ships the patch it uses itself.
    # The patch probes np.object, a FutureWarning users saw printed by build-engines.
    import warnings

    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()


# ----------------------------------------------------------------- parity against Keras
def parity(keras_model: keras.Model, onnx_path: Path, batch: np.ndarray) -> Parity:
    """Max/mean abs difference between Keras and ONNX Runtime on `batch`."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types
        raise BundleError(f"{onnx_path} does not load in ONNX Runtime: {one_line(exc)}") from None
    got = sess.run(None, {INPUT_NAME: batch})[0]
    want = np.asarray(keras_model(batch, training=False))
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return {"max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "images": len(batch)}
