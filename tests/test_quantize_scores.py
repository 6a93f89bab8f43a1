"""INT8 scores are continuous and keep FP32's order (no TensorFlow: the model is built with
onnx.helper, quantized with ONNX Runtime's real quantizer, run in real sessions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.metrics import rank_correlation

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _classifier(path: Path, size: int = 16, classes: int = 4) -> None:
    """uint8 NHWC pixels -> scale -> conv -> relu -> pool -> dense -> softmax."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(size=(8, classes)).astype(np.float32) * 0.5, "dense_w"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense_w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _scores(path: Path, pixels: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": pixels})[0]


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_int8_scores_are_continuous_and_track_fp32(tmp_path: Path, target: str) -> None:
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    _classifier(fp32)
    pixels = np.random.default_rng(1).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    int8_variant(fp32, int8, pixels[:32], target, "minmax")

    last = onnx.load(str(int8)).graph.node[-1]
    assert last.op_type == "Softmax"  # no Q/DQ after the scores
    quantized, reference = _scores(int8, pixels), _scores(fp32, pixels)
    in_steps_of_255 = np.isclose(quantized * 255, np.round(quantized * 255), atol=1e-4)
    assert in_steps_of_255.mean() < 0.1
    assert np.allclose(quantized.sum(axis=1), 1.0, atol=1e-5)
    assert rank_correlation(quantized[:, 0], reference[:, 0]) > 0.9


def test_rank_correlation_basics() -> None:
    assert rank_correlation(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 40.0])) == 1.0
    assert rank_correlation(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == -1.0
    # Ties share a rank: one tie does not make a perfect order imperfect in the other direction.
    assert rank_correlation(np.array([1, 1, 2.0]), np.array([5, 5, 9.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rank_correlation(np.array([1.0]), np.array([1.0]))
