"""The U-Net's skip joins as one convolution per joined tensor, added, for ONNX Runtime's INT8
(converters/rewrites/concat_split.py): the same function in real ONNX Runtime sessions, no
concat left in the INT8 graph ONNX Runtime runs, and no split when a cached calibration lacks
the partial sums' ranges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_fixtures import (
    assert_int8_follows,
    optimized_nodes,
    pixels_model,
    random_pixels,
    run_pixels,
)

from edgecrystal.converters import int8_variant as variant_module
from edgecrystal.converters.int8_variant import int8_variant
from edgecrystal.converters.rewrites.concat_split import convs_without_concat

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = 12


def _joins() -> Any:
    """uint8 NHWC -> three convs (a: 4 ch, b: 6 ch, c: 2 ch), then
    "pair": Concat(a, b) -> conv 3x3 with bias -> relu (a U-Net join: splits);
    "triple": Concat(a, b, c) -> conv 1x1 without bias (splits, with a running sum);
    "shared": Concat(b, c) read by two convs (stays); all three outputs concatenated."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    weights = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
               weight("w_a", 4, 3, 3, 3), weight("w_b", 6, 3, 3, 3), weight("w_c", 2, 3, 1, 1),
               weight("w_pair", 5, 10, 3, 3), weight("b_pair", 5), weight("w_triple", 3, 12, 1, 1),
               weight("w_shared_x", 2, 8, 1, 1), weight("w_shared_y", 2, 8, 1, 1)]
    same = [1, 1, 1, 1]  # pads of a 3x3 convolution that keeps the size
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w_a"], ["a_pre"], pads=same),
        helper.make_node("Relu", ["a_pre"], ["a"]),
        helper.make_node("Conv", ["nchw", "w_b"], ["b_pre"], pads=same),
        helper.make_node("Relu", ["b_pre"], ["b"]),
        helper.make_node("Conv", ["nchw", "w_c"], ["c"]),
        helper.make_node("Concat", ["a", "b"], ["pair_in"], name="pair_join", axis=1),
        helper.make_node("Conv", ["pair_in", "w_pair", "b_pair"], ["pair_pre"], name="pair",
                         pads=same),
        helper.make_node("Relu", ["pair_pre"], ["pair"]),
        helper.make_node("Concat", ["a", "b", "c"], ["triple_in"], name="triple_join", axis=1),
        helper.make_node("Conv", ["triple_in", "w_triple"], ["triple"], name="triple"),
        helper.make_node("Concat", ["b", "c"], ["shared_in"], name="shared_join", axis=1),
        helper.make_node("Conv", ["shared_in", "w_shared_x"], ["shared_x"]),
        helper.make_node("Conv", ["shared_in", "w_shared_y"], ["shared_y"]),
        helper.make_node("Concat", ["pair", "triple", "shared_x", "shared_y"], ["out"], axis=1),
    ]
    return pixels_model("joins", nodes, weights, SIZE, "out", ["N", 12, SIZE, SIZE])



def _concat_names(model: Any) -> list[str]:
    return sorted(node.name for node in model.graph.node if node.op_type == "Concat")


def test_joins_split_into_convs_compute_the_same() -> None:
    model, pixels = _joins(), random_pixels(SIZE, 1)
    before = run_pixels(model, pixels)
    fresh = convs_without_concat(model)
    assert fresh == {"pair_pre": ["pair_pre/part0", "pair_pre/part1"],
                     "triple": ["triple/part0", "triple/part1", "triple/part2", "triple/sum1"]}
    assert _concat_names(model) == ["", "shared_join"]  # the output's concat, the shared join
    weights = {init.name for init in model.graph.initializer}
    assert "w_pair" not in weights and "pair_pre/weights1" in weights  # sliced, not kept twice
    onnx.checker.check_model(model)
    after = run_pixels(model, pixels)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    assert before[:, :8].std() > 0.01  # the split outputs carry a signal, not constants


def test_int8_runs_the_join_without_a_concat(tmp_path: Path) -> None:
    fp32, u8 = tmp_path / "fp32.onnx", tmp_path / "u8.onnx"
    onnx.save(_joins(), str(fp32))
    summary = int8_variant(fp32, u8, random_pixels(SIZE, 2), "onnxruntime", "minmax")
    assert summary["concats_split_into_convs"] == 2
    ran = [node.op_type for node in optimized_nodes(u8, tmp_path)]
    assert ran.count("QLinearConcat") == 2, ran  # the shared join and the output's
    assert ran.count("QLinearAdd") == 3 and "Conv" not in ran and "Add" not in ran
    assert_int8_follows(fp32, u8, random_pixels(SIZE, 3))


def test_a_cache_without_the_partial_sums_keeps_the_concats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle calibrated before the split (QUANTIZER 4), rebuilt from its ranges with no
    images, has no ranges for the partial sums: the joins stay concats, all in INT8."""
    fp32, old, again = tmp_path / "fp32.onnx", tmp_path / "old.onnx", tmp_path / "again.onnx"
    cache = tmp_path / "ranges.json"
    onnx.save(_joins(), str(fp32))
    with monkeypatch.context() as patch:
        patch.setattr(variant_module, "convs_without_concat", lambda _model, ranged=None: {})
        int8_variant(fp32, old, random_pixels(SIZE, 4), "onnxruntime", "minmax", ranges_cache=cache)
    assert "pair_pre/part1" not in json.loads(cache.read_text())["data"]
    noise = np.full_like(random_pixels(SIZE, 5), 7)  # a cache hit must not calibrate on these
    summary = int8_variant(fp32, again, noise, "onnxruntime", "minmax", ranges_cache=cache)
    assert "concats_split_into_convs" not in summary
    ran = [node.op_type for node in optimized_nodes(again, tmp_path)]
    assert ran.count("QLinearConcat") == 4 and "QLinearAdd" not in ran and "Conv" not in ran
    pixels = random_pixels(SIZE, 6)
    np.testing.assert_array_equal(run_pixels(again, pixels), run_pixels(old, pixels))
