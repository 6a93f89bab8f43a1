"""Tiny ONNX classifiers built with onnx.helper (no TensorFlow): uint8 NHWC pixels in, class
scores out, in the three precisions the project makes (FP32, FP16 casts, INT8 Q/DQ with
symmetric zero-point-0 scales), and a bundle that lists them as the real one does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecrystal.bundle import Bundle

SIZE = 4
CLASSES = 3
OPSET = 13


def classifier(precision: str = "fp32", unknown_op: bool = False) -> onnx.ModelProto:
    """pixels [N,4,4,3] uint8 -> scores [N,3] float32: the mean of each colour channel / 255."""
    nodes = [helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT, name="to_float")]
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")]
    current = "x"
    if precision == "fp16":
        nodes.append(helper.make_node("Cast", [current], ["h"], to=TensorProto.FLOAT16,
                                      name="to_half"))
        inits = [numpy_helper.from_array(np.array(1 / 255, np.float16), "scale")]
        current = "h"
    if precision == "int8":
        inits += [numpy_helper.from_array(np.array(1.0, np.float32), "q_scale"),
                  numpy_helper.from_array(np.array(0, np.int8), "q_zero")]
        nodes += [helper.make_node("QuantizeLinear", [current, "q_scale", "q_zero"], ["q"],
                                   name="quantize"),
                  helper.make_node("DequantizeLinear", ["q", "q_scale", "q_zero"], ["dq"],
                                   name="dequantize")]
        current = "dq"
        # int8 holds 0..127: halve the pixels first so they fit
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes.insert(1, helper.make_node("Mul", ["x", "half"], ["x_half"], name="halve"))
        nodes[2].input[0] = "x_half"
    nodes.append(helper.make_node("Mul", [current, "scale"], ["scaled"], name="scale"))
    if unknown_op:
        nodes.append(helper.make_node("NotARealOp", ["scaled"], ["odd"], name="odd_node"))
    nodes.append(helper.make_node("ReduceMean", ["odd" if unknown_op else "scaled"], ["mean"],
                                  axes=[1, 2], keepdims=0, name="mean"))
    if precision == "fp16":
        nodes.append(helper.make_node("Cast", ["mean"], ["scores"], to=TensorProto.FLOAT,
                                      name="to_float_out"))
    else:
        nodes[-1].output[0] = "scores"
    graph = helper.make_graph(
        nodes, f"classifier_{precision}",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def expected(pixels: np.ndarray, precision: str = "fp32") -> np.ndarray:
    values = pixels.astype(np.float32)
    if precision == "int8":
        values = np.clip(np.round(values * 0.5), -128, 127)
    return values.mean(axis=(1, 2)) / 255


def onnx_bundle(root: Path) -> Bundle:
    """A bundle holding only ONNX classifiers (crop: none), as build-engines leaves them."""
    bundle = Bundle.open(root, create=True)
    bundle.meta["classifier"] = {"crop": "none", "input_size": SIZE}
    variants = {}
    for precision, backends in (("fp32", ["onnxruntime", "tensorrt"]),
                                ("fp16", ["tensorrt", "onnxruntime"]),
                                ("int8", ["tensorrt", "onnxruntime"])):
        rel = f"onnx/classifier.{precision}.onnx"
        bundle.path(rel).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(classifier(precision), bundle.path(rel))
        variants[precision] = {"file": rel, "precision": precision, "backends": backends,
                               "sha256": bundle.register_file(rel)}
    bundle.meta["onnx"] = {"classifier": variants}
    bundle.save()
    return Bundle.open(root)


def pixels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
