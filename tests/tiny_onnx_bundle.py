"""Bundles with tiny ONNX models built with onnx.helper: no TensorFlow needed.

The classifier is a real network (uint8 NHWC "pixels" -> scale -> conv -> ReLU -> global
average pool -> dense -> softmax "scores"), so ONNX Runtime, FP16 conversion and INT8
calibration run on it as on an exported Keras model. The "Keras file" beside it is a stand-in
whose bytes identify the training run: staleness checks compare hashes, never load it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecrystal import DEFAULT_CLASSES
from edgecrystal.bundle import Bundle

EXPORTER = "1"  # edgecrystal.converters.keras_to_onnx.EXPORTER_VERSION
OPSET = 17


def classifier_onnx(path: Path, size: int, classes: int, seed: int, spread: float = 1.0) -> None:
    """`spread` scales the dense layer: near 0 every image gets the same scores (a collapsed
    model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    filters = 8
    weights = {
        "scale": np.array(1 / 255, np.float32),
        "conv_w": rng.normal(0, 0.5, (filters, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, filters).astype(np.float32),
        "dense_w": rng.normal(0, 4.0 * spread, (filters, classes)).astype(np.float32),
        "dense_b": rng.normal(0, 0.1, classes).astype(np.float32),
        "flat": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Cast", ["pixels"], ["x_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_float", "scale"], ["x_scaled"]),
        helper.make_node("Transpose", ["x_scaled"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "conv_w", "conv_b"], ["conv"], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "flat"], ["features"]),
        helper.make_node("Gemm", ["features", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def build_tiny_bundle(root: Path, size: int = 32, seed: int = 0,
                      classes: tuple[str, ...] = DEFAULT_CLASSES, spread: float = 1.0) -> Path:
    """A crop-none bundle whose classifier has an FP32 ONNX export registered exactly as
    `export_bundle` registers one (so build-engines keeps it and needs no Keras)."""
    bundle = Bundle.open(root, create=True, classes=classes)
    bundle.section("classifier").update(
        {"model": "classifier.keras", "input_size": size, "crop": "none", "margin": 0.05,
         "profile": "tiny-onnx"})
    retrain(bundle, seed, spread=spread)
    return root


def retrain(bundle: Bundle, seed: int, *, export: bool = True, spread: float = 1.0) -> None:
    """What `train classifier` leaves: a new classifier.keras (registered). With `export`,
    also what build-engines' FP32 step leaves: a new onnx/classifier.fp32.onnx from it."""
    (bundle.root / "classifier.keras").write_bytes(f"stand-in Keras model, seed {seed}\n".encode())
    source = bundle.register_file("classifier.keras")
    if export:
        size = int(bundle.section("classifier")["input_size"])
        rel = "onnx/classifier.fp32.onnx"
        classifier_onnx(bundle.path(rel), size, len(bundle.classes), seed, spread)
        # The record export_bundle writes (written here by hand: this runs on older code too).
        bundle.section("onnx").setdefault("classifier", {})["fp32"] = {
            "file": rel, "precision": "fp32", "backends": ["onnxruntime", "tensorrt"],
            "sha256_source": source, "opset": OPSET, "exporter": EXPORTER,
            "sha256": bundle.register_file(rel), "input": "pixels", "input_dtype": "uint8",
            "output": "scores"}
    bundle.save()


def write_wells(folder: Path, n: int, seed: int = 0, size: int = 96) -> list[Path]:
    """`n` small well-like JPEG files in `folder`."""
    import cv2

    from edgecrystal.converters.check_pictures import synthetic_wells

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(synthetic_wells(n, seed, size)):
        path = folder / f"A{i + 1:02d}_1.jpg"
        cv2.imwrite(str(path), img[:, :, ::-1])
        paths.append(path)
    return paths


def write_class_folders(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    """A class-folder data set of synthetic wells, `per_class` per default class."""
    for k, name in enumerate(DEFAULT_CLASSES):
        write_wells(root / name, per_class, seed + 10 * k)
    return root
