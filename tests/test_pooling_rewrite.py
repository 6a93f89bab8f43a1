"""Inception's pooling branch with the average pool after its 1x1 convolution, for ONNX
Runtime's INT8 (converters/rewrites/pooling.py): the same function in real ONNX Runtime sessions,
fewer channels pooled, and never moved when a cached calibration has no range for the
convolution's output before the pool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_fixtures import assert_int8_follows, pixels_model, random_pixels, run_pixels

from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.converters.rewrites.pooling import pools_after_pointwise_convs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = 9


def _inception_branches() -> Any:
    """uint8 NHWC -> conv 3x3 (8 ch) -> relu, then three average pools 3x3/s1/pad 1 of it:
    "branch" feeds a 1x1 conv (bias) -> relu (the Inception pooling branch: moves); "counted"
    counts the padding (a bias would not pass through it at the borders: stays); "shared"
    feeds two convs (stays). Their outputs concatenated."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    weights = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
               weight("w_in", 8, 3, 3, 3), weight("w_branch", 3, 8, 1, 1), weight("b_branch", 3),
               weight("w_counted", 3, 8, 1, 1), weight("b_counted", 3),
               weight("w_shared_a", 2, 8, 1, 1), weight("w_shared_b", 2, 8, 1, 1)]
    pool = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w_in"], ["features_pre"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["features_pre"], ["features"]),
        helper.make_node("AveragePool", ["features"], ["pooled"], name="branch", **pool),
        helper.make_node("Conv", ["pooled", "w_branch", "b_branch"], ["branch_pre"]),
        helper.make_node("Relu", ["branch_pre"], ["branch"]),
        helper.make_node("AveragePool", ["features"], ["counted_pool"], name="counted",
                         count_include_pad=1, **pool),
        helper.make_node("Conv", ["counted_pool", "w_counted", "b_counted"], ["counted"]),
        helper.make_node("AveragePool", ["features"], ["shared_pool"], name="shared", **pool),
        helper.make_node("Conv", ["shared_pool", "w_shared_a"], ["shared_a"]),
        helper.make_node("Conv", ["shared_pool", "w_shared_b"], ["shared_b"]),
        helper.make_node("Concat", ["branch", "counted", "shared_a", "shared_b"], ["out"],
                         axis=1),
    ]
    return pixels_model("inception_branches", nodes, weights, SIZE, "out",
                        ["N", 10, SIZE, SIZE])


def _pooled_channels(path: Path) -> list[int]:
    """For each AveragePool of a Q/DQ model (sorted): the channels of the tensor it pools."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in model.graph.value_info}
    return sorted(shapes[node.input[0]][1] for node in model.graph.node
                  if node.op_type == "AveragePool")


def test_only_the_inception_branch_moves_and_computes_the_same() -> None:
    model, pixels = _inception_branches(), random_pixels(SIZE, 1)
    before = run_pixels(model, pixels)
    assert pools_after_pointwise_convs(model) == ["branch_pre/before_pool"]
    order = [node.name or node.output[0] for node in model.graph.node]
    assert order.index("branch_pre/before_pool") < order.index("branch")  # still topological
    after = run_pixels(model, pixels)
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert before[:, :3].std() > 0.01  # the moved branch carries a signal, not constants


def test_int8_pools_the_convolution_outputs(tmp_path: Path) -> None:
    fp32, u8 = tmp_path / "fp32.onnx", tmp_path / "u8.onnx"
    onnx.save(_inception_branches(), str(fp32))
    summary = int8_variant(fp32, u8, random_pixels(SIZE, 2), "onnxruntime", "minmax")
    assert summary["average_pools_after_1x1"] == 1
    assert _pooled_channels(u8) == [3, 8, 8]  # the moved one pools 3 channels, not 8
    assert_int8_follows(fp32, u8, random_pixels(SIZE, 3))


def test_a_cache_without_the_new_range_keeps_the_pools_in_place(tmp_path: Path) -> None:
    """A bundle calibrated before the move, rebuilt from its ranges with no images, cannot
    quantise the convolution's output before the pool: the pools stay where they were."""
    fp32, first, again = tmp_path / "fp32.onnx", tmp_path / "first.onnx", tmp_path / "again.onnx"
    cache = tmp_path / "ranges.json"
    onnx.save(_inception_branches(), str(fp32))
    int8_variant(fp32, first, random_pixels(SIZE, 4), "onnxruntime", "minmax", ranges_cache=cache)
    ranges = json.loads(cache.read_text())
    assert "branch_pre/before_pool" in ranges["data"]  # a cache made now covers the move
    summary = int8_variant(fp32, again, random_pixels(SIZE, 5), "onnxruntime", "minmax",
                       ranges_cache=cache)
    assert summary["average_pools_after_1x1"] == 1
    del ranges["data"]["branch_pre/before_pool"]  # as the quantizer before the move wrote it
    cache.write_text(json.dumps(ranges))
    summary = int8_variant(fp32, again, random_pixels(SIZE, 5), "onnxruntime", "minmax",
                       ranges_cache=cache)
    assert "average_pools_after_1x1" not in summary
    # Every pool reads the 8 channels (onnxruntime's pre-pass may merge the identical ones).
    assert set(_pooled_channels(again)) == {8}
