"""The U-Net's upsampling shuffle and skip concatenation written channels-last for ONNX
Runtime's INT8 (converters/rewrites/layout.py): the same function, the same INT8 answer bit for bit,
and no layout transposes left between ONNX Runtime's NHWC convolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_fixtures import optimized_nodes, pixels_model, random_pixels, run_pixels

from edgecrystal.converters import int8_variant as variant_module
from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.converters.rewrites.layout import channels_last_data_moves
from edgecrystal.converters.rewrites.upsampling import conv_transpose_to_depth_to_space

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = 16


def _mini_unet(extra_concat: bool = False) -> Any:
    """uint8 NHWC -> conv (the skip) -> max pool -> conv -> ConvTranspose 2x2/s2 -> concat with
    the skip -> conv -> sigmoid: one U-Net level. `extra_concat` adds a Concat of two conv
    outputs that no shuffle feeds (ONNX Runtime handles those itself)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    weights = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
               weight("w_skip", 6, 3, 3, 3), weight("w_down", 8, 6, 3, 3),
               weight("w_up", 8, 6, 2, 2), weight("b_up", 6), weight("w_out", 1, 12, 3, 3)]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w_skip"], ["skip_pre"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["skip_pre"], ["skip"]),
        helper.make_node("MaxPool", ["skip"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pooled", "w_down"], ["down_pre"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["down_pre"], ["down"]),
        helper.make_node("ConvTranspose", ["down", "w_up", "b_up"], ["up"], name="up",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["skip", "up"], ["joined"], name="join", axis=1),
        helper.make_node("Conv", ["joined", "w_out"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["mask"]),
    ]
    if extra_concat:
        nodes[9:10] = [helper.make_node("Concat", ["skip", "skip"], ["twice"], name="twice",
                                        axis=1),
                       helper.make_node("Slice", ["twice", "starts", "ends", "axes"],
                                        ["first"]),
                       helper.make_node("Concat", ["first", "up"], ["joined"], name="join",
                                        axis=1)]
        weights += [numpy_helper.from_array(np.array([v], np.int64), n)
                    for n, v in (("starts", 0), ("ends", 6), ("axes", 1))]
    return pixels_model("mini_unet", nodes, weights, SIZE, "mask", ["N", 1, SIZE, SIZE])


def _perm(node: Any) -> list[int]:
    return next(list(a.ints) for a in node.attribute if a.name == "perm")


def test_channels_last_moves_are_the_same_function() -> None:
    model, pixels = _mini_unet(), random_pixels(SIZE, 1)
    before = run_pixels(model, pixels)
    conv_transpose_to_depth_to_space(model)
    aliases = channels_last_data_moves(model)
    ops = [node.op_type for node in model.graph.node]
    assert "DepthToSpace" not in ops and ops.count("Concat") == 1
    # Every new tensor names the original tensor it permutes (for cached ranges).
    assert set(aliases.values()) <= {"up/shuffle_depth", "skip", "up", "joined"}
    after = run_pixels(model, pixels)
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert before.std() > 0.01  # a signal, not constants


def test_concats_no_shuffle_feeds_are_left_alone() -> None:
    model = _mini_unet(extra_concat=True)
    conv_transpose_to_depth_to_space(model)
    channels_last_data_moves(model)
    axes = {node.name: next(a.i for a in node.attribute if a.name == "axis")
            for node in model.graph.node if node.op_type == "Concat"}
    assert axes == {"twice": 1, "join": 3}


def test_int8_is_bit_identical_and_free_of_layout_transposes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fp32, plain, moved = tmp_path / "fp32.onnx", tmp_path / "plain.onnx", tmp_path / "moved.onnx"
    onnx.save(_mini_unet(), str(fp32))
    calibration, pixels = random_pixels(SIZE, 2), random_pixels(SIZE, 3)
    with monkeypatch.context() as patch:  # QUANTIZER 2: the upsampling rewrite alone
        patch.setattr(variant_module, "channels_last_data_moves", lambda _model: {})
        int8_variant(fp32, plain, calibration, "onnxruntime", "minmax")
    summary = int8_variant(fp32, moved, calibration, "onnxruntime", "minmax")
    assert summary["channels_last_tensors"] > 0
    np.testing.assert_array_equal(run_pixels(moved, pixels), run_pixels(plain, pixels))

    def layout_moves(path: Path) -> list[str]:
        """Nodes moving whole tensors between NCHW and NHWC, or shuffling in NCHW."""
        return [node.op_type for node in optimized_nodes(path, tmp_path)
                if node.op_type == "DepthToSpace"
                or (node.op_type == "Transpose" and len(_perm(node)) == 4)]

    before, after = layout_moves(plain), layout_moves(moved)
    assert "DepthToSpace" in before and "DepthToSpace" not in after
    # What is left: the one Transpose that hands the float output back in NCHW.
    assert after == ["Transpose"], after
    assert len(before) > len(after)


def test_ranges_cached_by_the_previous_quantizer_cover_the_rewrite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle calibrated before this rewrite, rebuilt from its ranges cache with no images:
    every new tensor borrows the range of the one it permutes, and nothing stays float."""
    fp32, old, new = tmp_path / "fp32.onnx", tmp_path / "old.onnx", tmp_path / "new.onnx"
    cache = tmp_path / "ranges.json"
    onnx.save(_mini_unet(), str(fp32))
    calibration = random_pixels(SIZE, 4)
    with monkeypatch.context() as patch:
        patch.setattr(variant_module, "channels_last_data_moves", lambda _model: {})
        int8_variant(fp32, old, calibration, "onnxruntime", "minmax", ranges_cache=cache)
    int8_variant(fp32, new, np.full_like(calibration, 7), "onnxruntime", "minmax",
             ranges_cache=cache)  # a cache hit must not calibrate on these
    floats = {node.op_type for node in optimized_nodes(new, tmp_path)} & {
        "Conv", "Concat", "DepthToSpace", "DequantizeLinear", "QuantizeLinear"}
    assert floats <= {"QuantizeLinear", "DequantizeLinear"}, floats
    pixels = random_pixels(SIZE, 5)
    np.testing.assert_array_equal(run_pixels(new, pixels), run_pixels(old, pixels))
