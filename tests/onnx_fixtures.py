"""TensorFlow-free model bundles for the fast test tier, built with onnx.helper.

The graphs have the exported models' interface (uint8 NHWC input named INPUT_NAME, scaling
inside, the same output names, metadata and bundle.json records) but hand-set weights instead
of training, so they cost milliseconds to make and need no Keras:

- finder: a 5x5 averaging filter over the grey level, then a steep sigmoid around a brightness
  level. On a synthetic well (a dark plate, a lighter drop) it marks the drop, so pipeline and
  daemon tests see found drops with plausible boxes.
- classifier: one seeded 3x3 conv (stride 2), ReLU, global average pool, a dense layer and a
  softmax over the bundle's classes. Untrained, but deterministic and input-dependent.
- crystals (`add_crystals`): a probability map of pixels darker than their neighbourhood (a
  5x5 mean minus the pixel, then a steep sigmoid): dark specks in a drop light up, flat areas
  do not. The crystal model's interface (the drop crop in, N x size x size x 1 out).

`build_fast_bundle` writes the fp32 files and registers them as converters.keras_to_onnx does;
`add_precision_variants` then makes the FP16 and INT8 Q/DQ variants with the project's own
converters (converters.build + calibration.quantize: ONNX and ONNX Runtime, no TensorFlow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgecrystal import DEFAULT_CLASSES, PREPROCESS_VERSION
from edgecrystal.bundle import Bundle
from edgecrystal.converters.keras_to_onnx import EXPORTER_VERSION, OUTPUTS
from edgecrystal.converters.onnx_files import (
    BATCH_DIM,
    DEFAULT_OPSET,
    onnx_rel,
    save_model,
    set_metadata,
)
from edgecrystal.hashing import sha256_file
from edgecrystal.models import INPUT_NAME

FINDER_SIZE = 64
CLASSIFIER_SIZE = 48
CRYSTALS_SIZE = 40
# A pixel this much darker (0..1 grey) than its 5x5 neighbourhood is crystal-like.
SPECK_CONTRAST = 0.08
SPECK_GAIN = 40.0
# Grey level (0..1) between a synthetic well's plate (<= 0.43) and its drop (>= 0.47 on average).
DROP_LEVEL = 0.45
DROP_GAIN = 25.0
EXPORTER = "tests/onnx_fixtures.py (onnx.helper, hand-set weights)"
# ONNX Runtime >= 1.16 reads IR 8 with opset 17.
IR_VERSION = 8


def finder_graph(size: int = FINDER_SIZE) -> Any:
    """pixels (uint8 N x size x size x 3) -> mask (float32 N x size x size x 1, in [0, 1])."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.full((1, 3, 5, 5), 1.0 / 75.0, np.float32)  # mean of 3 channels over 5x5
    initializers = [
        numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), "scale"),
        numpy_helper.from_array(weights, "smooth_w"),
        numpy_helper.from_array(np.array([-DROP_LEVEL], np.float32), "smooth_b"),
        numpy_helper.from_array(np.array(DROP_GAIN, np.float32), "gain"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "smooth_w", "smooth_b"], ["level"],
                         kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Mul", ["level", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
        helper.make_node("Transpose", ["prob"], [OUTPUTS["finder"]], perm=[0, 2, 3, 1]),
    ]
    return _model("finder", nodes, initializers, size, [BATCH_DIM, size, size, 1])


def crystals_graph(size: int = CRYSTALS_SIZE) -> Any:
    """pixels (uint8 N x size x size x 3) -> crystals (float32 N x size x size x 1, in [0, 1]):
    high where a pixel is darker than its 5x5 neighbourhood by SPECK_CONTRAST or more."""
    from onnx import TensorProto, helper, numpy_helper

    # 5x5 mean of the grey level minus the pixel's own grey level, in one convolution.
    weights = np.full((1, 3, 5, 5), 1.0 / 75.0, np.float32)
    weights[0, :, 2, 2] -= 1.0 / 3.0
    initializers = [
        numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), "scale"),
        numpy_helper.from_array(weights, "contrast_w"),
        numpy_helper.from_array(np.array([-SPECK_CONTRAST], np.float32), "contrast_b"),
        numpy_helper.from_array(np.array(SPECK_GAIN, np.float32), "gain"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "contrast_w", "contrast_b"], ["contrast"],
                         kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Mul", ["contrast", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
        helper.make_node("Transpose", ["prob"], [OUTPUTS["crystals"]], perm=[0, 2, 3, 1]),
    ]
    return _model("crystals", nodes, initializers, size, [BATCH_DIM, size, size, 1])


def classifier_graph(num_classes: int, size: int = CLASSIFIER_SIZE, seed: int = 0,
                     collapsed: bool = False) -> Any:
    """pixels (uint8 N x size x size x 3) -> scores (float32 N x num_classes, rows sum to 1).
    `collapsed`: the dense layer ignores its features, so every image gets the same scores
    (a classifier that learned nothing)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    features = 8
    initializers = [
        numpy_helper.from_array(np.array(1.0 / 127.5, np.float32), "scale"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "offset"),
        numpy_helper.from_array(rng.normal(0, 0.4, (features, 3, 3, 3)).astype(np.float32),
                                "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, features).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 0.0 if collapsed else 1.0,
                                           (features, num_classes)).astype(np.float32),
                                "dense_w"),
        numpy_helper.from_array(np.linspace(0, 0.5 if collapsed else 0, num_classes,
                                            dtype=np.float32), "dense_b"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["centred"]),
        helper.make_node("Transpose", ["centred"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"],
                         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUTS["classifier"]], axis=1),
    ]
    return _model("classifier", nodes, initializers, size, [BATCH_DIM, num_classes])


def _model(role: str, nodes: list[Any], initializers: list[Any], size: int,
           output_shape: list[Any]) -> Any:
    return pixels_model(f"{role}_fixture", nodes, initializers, size, OUTPUTS[role],
                        output_shape)


def pixels_model(name: str, nodes: list[Any], initializers: list[Any], size: int,
                 output: str, output_shape: list[Any]) -> Any:
    """A checked onnx.ModelProto taking the models' input (uint8 N x size x size x 3 named
    INPUT_NAME) and giving one float32 `output`."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8,
                                       [BATCH_DIM, size, size, 3])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)],
                              producer_name="edgecrystal-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def run_pixels(model_or_path: Any, pixels: np.ndarray) -> np.ndarray:
    """The first output of a model (an onnx.ModelProto or a file) on `pixels`, in a real ONNX
    Runtime CPU session."""
    import onnxruntime as ort

    source = (str(model_or_path) if isinstance(model_or_path, Path)
              else model_or_path.SerializeToString())
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: pixels})[0]


def random_pixels(size: int, seed: int, count: int = 8) -> np.ndarray:
    """`count` seeded uint8 size x size x 3 pictures of noise: the models' input."""
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def assert_int8_follows(fp32: Path, quantised: Path, pixels: np.ndarray) -> None:
    """A rewritten INT8 file stays within INT8's rounding of its FP32 source: mean abs
    difference under 2 % of the mean output magnitude (+ 0.01), in ONNX Runtime."""
    reference, got = run_pixels(fp32, pixels), run_pixels(quantised, pixels)
    assert np.abs(got - reference).mean() < 0.02 * np.abs(reference).mean() + 0.01


def optimized_nodes(path: Path, folder: Path) -> list[Any]:
    """The nodes ONNX Runtime runs for the model at `path` after its graph optimisations (QDQ
    fusion, NHWC layout), from the optimized model it saves into `folder`."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(folder / "optimized.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return list(onnx.load(opts.optimized_model_filepath).graph.node)


def build_fast_bundle(root: Path, classes: tuple[str, ...] = DEFAULT_CLASSES,
                      collapsed: bool = False) -> Path:
    """A complete bundle at `root` with fp32 ONNX finder and classifier (no Keras files);
    `collapsed`: a classifier that gives every image the same scores."""
    bundle = Bundle.open(root, create=True, classes=classes)
    bundle.section("finder").update(
        {"input_size": FINDER_SIZE, "profile": "fixture", "threshold": 0.5})
    bundle.section("classifier").update(
        {"input_size": CLASSIFIER_SIZE, "crop": "finder", "margin": 0.05, "profile": "fixture"})
    _write_fp32(bundle, "finder", finder_graph(), FINDER_SIZE)
    _write_fp32(bundle, "classifier", classifier_graph(len(classes), collapsed=collapsed),
                CLASSIFIER_SIZE)
    bundle.save()
    return root


def add_crystals(root: Path, threshold: float = 0.5) -> Path:
    """Give the bundle at `root` a crystal model: the "crystals" section (model, input_size,
    threshold) and its fp32 ONNX (crystals_graph), recorded as an imported model's source (no
    Keras file: build-engines makes its variants from the ONNX). The fixture classifier is
    untrained, so its crystals hits are chance: the crystal model looks at every drop
    (`hits_only` false; tests/test_crystal_stage.py tests the hits-only default)."""
    bundle = Bundle.open(root)
    bundle.section("crystals").update(
        {"model": "crystals.keras", "input_size": CRYSTALS_SIZE, "threshold": threshold,
         "hits_only": False, "profile": "fixture", "imported": {"format": "ONNX (test fixture)"}})
    _write_fp32(bundle, "crystals", crystals_graph(), CRYSTALS_SIZE)
    bundle.save()
    return root


def _write_fp32(bundle: Bundle, role: str, proto: Any, size: int) -> None:
    """Write `proto` as the bundle's onnx/<role>.fp32.onnx and record it as the export does."""
    set_metadata(proto, {
        "role": role, "classes": json.dumps(bundle.classes),
        "preprocess_version": PREPROCESS_VERSION, "input_size": str(size),
        "input_dtype": "uint8", "input_layout": "NHWC", "precision": "fp32",
        "exporter": EXPORTER,
    })
    rel = onnx_rel(role, "fp32")
    out = bundle.path(rel)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(proto, out)
    sha = bundle.register_file(rel)
    # The graph stands in for its own source: there is no Keras file to hash.
    bundle.section("onnx").setdefault(role, {})["fp32"] = {
        "file": rel, "precision": "fp32", "backends": ["onnxruntime", "tensorrt"],
        "sha256_source": sha256_file(out), "opset": DEFAULT_OPSET,
        "exporter": EXPORTER_VERSION, "sha256": sha, "input": INPUT_NAME,
        "input_dtype": "uint8", "output": OUTPUTS[role],
        "parity": {"reference": "onnx.helper fixture", "max_abs_diff": 0.0},
    }


def add_precision_variants(root: Path, calibration_data: Path) -> Path:
    """FP16 and INT8 (Q/DQ for TensorRT, u8 for ONNX Runtime) variants of a fast bundle, made by
    the project's converters from `calibration_data` (an images/labels data set)."""
    from edgecrystal.converters.build import Options, Report, make_fp16, make_int8

    bundle = Bundle.open(root)
    models = ["finder", "classifier"]
    for model in models:
        make_fp16(bundle, model, force=False)
    make_int8(bundle, models, Options(calib=calibration_data, calib_count=8), Report(),
              lambda _line: None)
    bundle.save()
    return root


def write_wells(folder: Path, count: int) -> list[Path]:
    """`count` small JPEG wells (a light drop on a dark plate, the fixture finder's kind of
    picture) named A01_1.jpg, A02_1.jpg ... in `folder`."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = np.full((90, 120, 3), 70 + i, np.uint8)
        cv2.circle(img, (60, 45), 30, (200, 180, 150), -1)
        path = folder / f"A{i + 1:02d}_1.jpg"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths
