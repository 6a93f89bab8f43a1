"""`edgecrystal verify` shows rank correlation against FP32 and whether scores are continuous:
real ONNX Runtime sessions over the fast bundle's real INT8/FP16 variants (no TensorFlow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.converters.int8_gate import s8s8_exact
from edgecrystal.converters.verify import STEPPED_SHARE, format_table, grid_share, run_verify


def test_verify_shows_rank_correlation_and_continuous_scores(
        fast_bundle: Path, fast_calibration_data: Path) -> None:
    result = run_verify(fast_bundle, fast_calibration_data, 8)
    classifier = result["models"]["classifier"]
    assert classifier["rank_reference"] == "onnx-fp32"
    variants = classifier["variants"]
    # TensorRT's s8 x s8 file is compared in ONNX Runtime only where it computes it exactly.
    names = ("onnx-fp16", "onnx-int8-u8") + (("onnx-int8",) if s8s8_exact() else ())
    assert set(names) <= set(variants)
    for name in names:
        ranks = variants[name]["rank_correlation"]
        assert set(ranks) == {"clear", "crystals", "precipitate", "other"}
        assert all(rho > 0.8 for rho in ranks.values()), (name, ranks)
        assert variants[name]["grid_share"] < STEPPED_SHARE, name  # softmax runs in float
    assert all(rho == pytest.approx(1.0) for rho in
               variants["onnx-fp32"]["rank_correlation"].values())
    finder = result["models"]["finder"]["variants"]
    assert finder["onnx-int8-u8"]["rank_correlation"]["mask"] > 0.9
    table = format_table(result)
    assert "rho crystals" in table and "rho mask" in table
    assert "continuous" in table and "stepped" not in table


def test_verify_flags_a_quantised_softmax(fast_bundle: Path, fast_calibration_data: Path,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The old INT8 (softmax in u8, scores in steps of 1/255) is what `stepped` is there for:
    quantised again with the softmax included, verify must say so."""
    from edgecrystal.bundle import Bundle
    from edgecrystal.calibration import quantize as quantize_module
    from edgecrystal.converters.int8_variant import int8_variant

    root = tmp_path / "bundle"
    shutil.copytree(fast_bundle, root)
    bundle = Bundle.open(root)
    size = bundle.input_size("classifier")
    pixels = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    monkeypatch.setattr(quantize_module, "FLOAT_OUTPUT_OPS", ())
    int8_variant(bundle.path(bundle.variant("classifier", "fp32")["file"]),
                             bundle.path(bundle.variant("classifier", "int8-u8")["file"]),
                             pixels, "onnxruntime", "minmax")
    result = run_verify(root, fast_calibration_data, 8)
    stepped = result["models"]["classifier"]["variants"]["onnx-int8-u8"]
    assert stepped["grid_share"] > STEPPED_SHARE
    assert "warning: classifier onnx-int8-u8 scores are quantised" in format_table(result)


def test_grid_share_tells_steps_from_continuous_scores() -> None:
    rng = np.random.default_rng(0)
    steps = rng.integers(1, 255, 500) / 255.0
    assert grid_share(steps) == 1.0
    assert grid_share(rng.integers(1, 127, 500) / 127.0) == 1.0  # an s8 grid
    assert grid_share(rng.uniform(0.0, 1.0, 500)) < 0.05
    assert np.isnan(grid_share(np.array([0.0, 1.0, 1.0])))  # saturated: nothing to tell
