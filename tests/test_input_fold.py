"""The pixels read as the first quantised tensor in ONNX Runtime's INT8
(converters/rewrites/input_fold.py): done only where the quantised scaling gives every pixel value
back, the same Q/DQ function afterwards, and no input scaling left in what ONNX Runtime runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_fixtures import optimized_nodes, pixels_model

from edgecrystal.converters import int8_variant as variant_module
from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.converters.rewrites.input_fold import pixels_read_as_quantized
from edgecrystal.interface import INPUT_NAME

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = 10


def _scaled_conv(scale: float, offset: float | None) -> Any:
    """uint8 NHWC -> x * scale (+ offset) -> NCHW -> conv 3x3 -> sigmoid."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(np.array(scale, np.float32), "scale"),
               numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32),
                                       "w")]
    nodes = [helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["as_float", "scale"], ["scaled"])]
    if offset is not None:
        weights.append(numpy_helper.from_array(np.array(offset, np.float32), "offset"))
        nodes.append(helper.make_node("Add", ["scaled", "offset"], ["shifted"]))
    nodes += [helper.make_node("Transpose", [nodes[-1].output[0]], ["nchw"], perm=[0, 3, 1, 2]),
              helper.make_node("Conv", ["nchw", "w"], ["logits"], pads=[1, 1, 1, 1]),
              helper.make_node("Sigmoid", ["logits"], ["out"])]
    return pixels_model("scaled_conv", nodes, weights, SIZE, "out", ["N", 4, SIZE, SIZE])


def _pixels(seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(low, high, (8, SIZE, SIZE, 3), dtype=np.uint8)
    if low == 0 and high == 256:
        pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255  # black and white, as photos have
    return pixels


def _run_as_defined(model: Any, pixels: np.ndarray) -> np.ndarray:
    """The Q/DQ graph's own function: no fusion into integer kernels."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: pixels})[0]


@pytest.mark.parametrize("offset", [None, -1.0])
def test_the_pixels_feed_the_first_quantised_tensor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: float | None) -> None:
    """x / 255 (the U-Net) and x * 2 / 255 - 1 (Inception): the Mul goes, an Add stays."""
    fp32, u8 = tmp_path / "fp32.onnx", tmp_path / "u8.onnx"
    onnx.save(_scaled_conv(1 / 255 if offset is None else 2 / 255, offset), str(fp32))
    summary = int8_variant(fp32, u8, _pixels(1), "onnxruntime", "minmax")
    assert summary["input_read_as_quantized"] == 1
    folded = onnx.load(str(u8))
    first = next(node for node in folded.graph.node if INPUT_NAME in node.input)
    assert first.op_type == "DequantizeLinear"
    ran = [node.op_type for node in optimized_nodes(u8, tmp_path)]
    assert not {"Cast", "QuantizeLinear", "QLinearMul"} & set(ran), ran
    assert ("QLinearAdd" in ran) == (offset is not None)
    # The same function as the Q/DQ graph with its scaling, on every pixel value.
    unfolded = tmp_path / "unfolded.onnx"
    with monkeypatch.context() as patch:  # the quantizer before the fold (QUANTIZER 5)
        patch.setattr(variant_module, "_pixels_read_as_quantized", lambda _path: {})
        int8_variant(fp32, unfolded, _pixels(1), "onnxruntime", "minmax")
    original = onnx.load(str(unfolded))
    assert "Cast" in {node.op_type for node in original.graph.node}
    pixels = np.arange(SIZE * SIZE * 3 * 9, dtype=np.int64).reshape(9, SIZE, SIZE, 3) % 256
    pixels = pixels.astype(np.uint8)
    np.testing.assert_array_equal(_run_as_defined(folded, pixels),
                                  _run_as_defined(original, pixels))


def test_a_scaling_that_is_not_the_identity_stays(tmp_path: Path) -> None:
    """Calibrated on mid-grey pictures only, the scaled input's range is narrower than the
    pixels': its quantisation clips, so reading the pixels directly would change the values."""
    fp32, u8 = tmp_path / "fp32.onnx", tmp_path / "u8.onnx"
    onnx.save(_scaled_conv(1 / 255, None), str(fp32))
    summary = int8_variant(fp32, u8, _pixels(2, 60, 200), "onnxruntime", "minmax")
    assert "input_read_as_quantized" not in summary
    ran = [node.op_type for node in optimized_nodes(u8, tmp_path)]
    assert "QuantizeLinear" in ran


def test_a_model_without_the_pattern_is_left_alone() -> None:
    model = _scaled_conv(1 / 255, None)  # float, no Q/DQ at all
    before = model.SerializeToString()
    assert not pixels_read_as_quantized(model)
    assert model.SerializeToString() == before
