"""`edgecrystal evaluate` and the finder-vs-full experiment, end to end on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal.evaluate import evaluate

# Keras models and TensorFlow in every test: the slow tier.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_evaluate_writes_table_and_figures(trained_bundle: tuple[Path, Path],
                                           tmp_path: Path) -> None:
    bundle, data = trained_bundle
    out = tmp_path / "report"
    report = evaluate(data, bundle, out)
    for name in ("report.md", "report.json", "roc.png", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    saved = json.loads((out / "report.json").read_text())
    f, c = saved["finder"], saved["classifier"]
    assert f["images"] == 24 and len(f["per_image"]) == 24
    assert 0.0 <= f["dice_mean"] <= 1.0 and 0.0 <= f["iou_mean"] <= f["dice_mean"] + 1e-9
    assert c["crop"] == "finder" and c["images"] == 24
    # No ONNX variant yet (trained, not exported): the Keras models score, through the same
    # pipeline as `score` (the session's keras backend: worst.png too), and the report says so.
    assert c["runtime"] == "keras (no ONNX variant)" and "worst.png" in c["figures"]
    assert f["runtime"] == "keras fp32"
    assert sum(map(sum, c["confusion_matrix"])) == 24
    assert set(c["roc_auc"]) == {"clear", "crystals", "precipitate", "other", "macro"}
    assert report["classifier"]["accuracy"] == pytest.approx(c["accuracy"])
    md = (out / "report.md").read_text()
    assert "| Dice |" in md and "**macro**" in md


def test_evaluate_cli_bad_bundle_is_one_line(trained_bundle: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    _, data = trained_bundle
    r = subprocess.run([sys.executable, "-m", "edgecrystal", "evaluate", str(data), "--bundle",
                        str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "does not exist" in lines[0]


def test_finder_vs_full_experiment_tiny(trained_bundle: tuple[Path, Path],
                                        tmp_path: Path) -> None:
    from edgecrystal.experiment import finder_vs_full

    _, data = trained_bundle
    out = tmp_path / "exp"
    # MobileNetV3-Small, not tiny's Inception-V3: this tests the experiment's three arms and its
    # report, and three Inception-V3 builds took 2.5 minutes of the slow tier.
    result = finder_vs_full(data, out, repeats=1, profile="tiny",
                            classifier_overrides={"epochs": 1, "backbone": "mobilenet_v3_small",
                                                  "input_size": 64},
                            finder_overrides={"epochs": 1})
    summary = result["summary"]
    assert set(summary) >= {"full", "manual", "finder", "finder_minus_full"}
    for arm in ("full", "manual", "finder"):
        assert summary[arm]["macro_auc"]["n"] == 1
    run = result["runs"][0]
    assert run["train"] + run["test"] == 24
    for name in ("report.md", "report.json", "roc_arms.png"):
        assert (out / name).is_file()
    assert not (out / "runs").exists()  # checkpoints cleaned up
