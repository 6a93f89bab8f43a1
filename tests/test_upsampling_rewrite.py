"""The U-Net's ConvTranspose upsampling as Conv 1x1 + DepthToSpace: the same function in real
ONNX Runtime sessions, and INT8 (QLinearConv) after quantisation where ConvTranspose was float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import optimized_nodes, pixels_model, run_pixels

from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.converters.rewrites.upsampling import conv_transpose_to_depth_to_space

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _upsampler(size: int = 12, pads: tuple[int, ...] = (0, 0, 0, 0), kernel: int = 2) -> object:
    """uint8 NHWC -> conv 3x3 -> relu -> ConvTranspose (kernel, stride 2, bias) -> relu ->
    ConvTranspose 2x2 without bias, concatenated with a plain 4x upsample of the conv."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
        numpy_helper.from_array(rng.normal(size=(6, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(size=(6, 5, kernel, kernel)).astype(np.float32),
                                "up_w"),
        numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "up_b"),
        numpy_helper.from_array(rng.normal(size=(5, 4, 2, 2)).astype(np.float32), "up2_w"),
    ]
    out_size = 4 * size if pads == (0, 0, 0, 0) and kernel == 2 else None
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("ConvTranspose", ["relu", "up_w", "up_b"], ["up"], name="up",
                         kernel_shape=[kernel, kernel], strides=[2, 2], pads=list(pads)),
        helper.make_node("Relu", ["up"], ["up_relu"]),
        helper.make_node("ConvTranspose", ["up_relu", "up2_w"], ["up2"], name="up2",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["up2"], ["mask"]),
    ]
    return pixels_model("upsampler", nodes, weights, size, "mask",
                        ["N", 4, out_size, out_size])

def test_pixel_shuffle_is_the_same_function() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    model = _upsampler()
    before = run_pixels(model, pixels)
    aliases = conv_transpose_to_depth_to_space(model)
    assert sorted(aliases.values()) == ["up", "up2"]  # with and without bias
    ops = [node.op_type for node in model.graph.node]  # type: ignore[attr-defined]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 2
    after = run_pixels(model, pixels)
    assert after.shape == (3, 4, 48, 48)
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert before.std() > 0.01  # the comparison is of a signal, not of constants


@pytest.mark.parametrize("kernel, pads", [(3, (1, 1, 0, 0)), (2, (1, 1, 1, 1))])
def test_other_conv_transposes_are_left_alone(kernel: int, pads: tuple[int, ...]) -> None:
    model = _upsampler(kernel=kernel, pads=pads)
    # Only the second, plain 2x2 one is a pixel shuffle.
    assert list(conv_transpose_to_depth_to_space(model).values()) == ["up2"]
    names = {n.name for n in model.graph.node if n.op_type == "ConvTranspose"}  # type: ignore
    assert names == {"up"}


def test_onnxruntime_int8_runs_the_upsampling_in_integer(tmp_path: Path) -> None:
    fp32, u8, s8 = tmp_path / "fp32.onnx", tmp_path / "u8.onnx", tmp_path / "s8.onnx"
    onnx.save(_upsampler(), str(fp32))
    pixels = np.random.default_rng(2).integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    summary = int8_variant(fp32, u8, pixels[:8], "onnxruntime", "minmax")
    assert summary["conv_transpose_as_depth_to_space"] == 2
    int8_variant(fp32, s8, pixels[:8], "tensorrt", "minmax")  # TensorRT has INT8 deconvolution
    ran = {node.op_type for node in optimized_nodes(u8, tmp_path)}
    # The shuffle moves uint8 bytes (as NHWC Reshape + Transpose: converters/rewrites/layout.py).
    assert "ConvTranspose" not in ran and "QLinearConv" in ran and "Reshape" in ran
    assert "ConvTranspose" in {n.op_type for n in onnx.load(str(s8)).graph.node}
    reference, quantised = run_pixels(fp32, pixels), run_pixels(u8, pixels)
    assert np.abs(quantised - reference).mean() < 0.05
    assert not list(tmp_path.glob("*.shuffle.onnx")) and not list(tmp_path.glob("*.prep.onnx"))


def test_ranges_cached_before_the_rewrite_still_quantise_it(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle calibrated by the quantizer before the rewrite, rebuilt from its ranges cache
    with no images: the 1x1 Conv borrows the range of the ConvTranspose output it permutes."""
    from edgecrystal.converters import int8_variant as variant_module

    fp32, old, new = tmp_path / "fp32.onnx", tmp_path / "old.onnx", tmp_path / "new.onnx"
    cache = tmp_path / "ranges.json"
    onnx.save(_upsampler(), str(fp32))
    pixels = np.random.default_rng(3).integers(0, 256, (8, 12, 12, 3), dtype=np.uint8)
    with monkeypatch.context() as patch:  # the quantizer as it was: no rewrite
        patch.setattr(variant_module, "_for_onnxruntime",
                      lambda path, _out, _cached, *_skip: (path, [], {}))
        int8_variant(fp32, old, pixels, "onnxruntime", "minmax", ranges_cache=cache)
    # Float: ONNX Runtime has no integer ConvTranspose kernel.
    assert "ConvTranspose" in {n.op_type for n in optimized_nodes(old, tmp_path)}
    noise = np.full_like(pixels, 7)  # a cache hit must not calibrate on these
    int8_variant(fp32, new, noise, "onnxruntime", "minmax", ranges_cache=cache)
    ran = {node.op_type for node in optimized_nodes(new, tmp_path)}
    assert "ConvTranspose" not in ran and "Conv" not in ran, ran
    reference = run_pixels(fp32, pixels)
    error_new = np.abs(run_pixels(new, pixels) - reference).mean()
    error_old = np.abs(run_pixels(old, pixels) - reference).mean()
    assert error_new < 1.5 * error_old + 1e-3, (error_new, error_old)  # same ranges, same error
