"""`edgecrystal evaluate` scores the classifier through the deployed path: the image files through
the runtime's pipeline on ONNX Runtime (the fast bundle's onnx.helper models, no TensorFlow), so
its figures are those of what `score` writes. Class folders as data (no masks: no finder Dice)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.evaluate import WORST_PER_CLASS, evaluate
from edgecrystal.imageio import read_image, write_image
from edgecrystal.outline_sheet import COLUMNS, TILE
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.scene import render_any

CLASSES = ("clear", "crystals", "precipitate", "other")
PER_CLASS = {"clear": 2, "crystals": 6, "precipitate": 3, "other": 2}


def class_folders(root: Path, per_class: dict[str, int] = PER_CLASS) -> Path:
    """Synthetic wells of every class written as <class>/well_<i>.jpg (the class-folder layout)."""
    i = 0
    for label, n in per_class.items():
        (root / label).mkdir(parents=True)
        for _ in range(n):
            rgb, _, _ = render_any(image_rng(61, i), 200, 160, label, "random")
            write_image(root / label / f"well_{i}.jpg", rgb)
            i += 1
    return root


def _score_cli(bundle: Path, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", "score", str(bundle), str(folder),
                           "-r", "--backend", "onnxruntime", *extra],
                          capture_output=True, text=True, timeout=300, check=False)


def test_evaluate_gives_the_scores_score_writes(fast_bundle: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data")
    report = evaluate(data, fast_bundle, tmp_path / "ev")
    c = report["classifier"]
    assert c["runtime"] == "onnxruntime fp32"
    assert c["images"] == sum(PER_CLASS.values()) == len(c["per_image"])
    done = _score_cli(fast_bundle, data)
    assert done.returncode == 0, done.stderr
    for row in c["per_image"]:
        written = json.loads((data / f"{row['image']}.edgecrystal.json").read_text())
        assert written["label"] == row["predicted"]
        for name in CLASSES:
            assert row["scores"][name] == pytest.approx(written["scores"][name], abs=2e-6)
        assert row["label"] == Path(row["image"]).parent.name


def test_crystal_figures_and_the_worst_sheet(fast_bundle: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data")
    out = tmp_path / "ev"
    c = evaluate(data, fast_bundle, out)["classifier"]
    assert c["crystals_vs_rest_auc"] == c["roc_auc"]["crystals"]
    k = CLASSES.index("crystals")
    row = c["confusion_matrix"][k]
    assert c["crystal_recall"] == pytest.approx(row[k] / sum(row))
    # The worst sheet: per true class its lowest-scored images, at most WORST_PER_CLASS each.
    tiles = sum(min(n, WORST_PER_CLASS) for n in PER_CLASS.values())
    sheet = read_image(out / "worst.png")
    assert sheet.shape[:2] == (TILE * -(-tiles // COLUMNS), TILE * COLUMNS)
    assert "worst.png" in c["figures"]
    md = (out / "report.md").read_text()
    assert "Crystals vs rest ROC AUC" in md and "onnxruntime fp32" in md and "worst.png" in md
    saved = json.loads((out / "report.json").read_text())["classifier"]
    assert saved["crystal_recall"] == pytest.approx(c["crystal_recall"])


def test_evaluate_at_int8_runs_the_int8_variant(fast_bundle: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data")
    fp32 = evaluate(data, fast_bundle, tmp_path / "a")["classifier"]
    int8 = evaluate(data, fast_bundle, tmp_path / "b", precision="int8")["classifier"]
    assert int8["runtime"] == "onnxruntime int8"
    a = np.array([[r["scores"][n] for n in CLASSES] for r in fp32["per_image"]])
    b = np.array([[r["scores"][n] for n in CLASSES] for r in int8["per_image"]])
    assert not np.array_equal(a, b)  # another model ran
    assert np.abs(a - b).max() < 0.2  # and it is a faithful INT8 of the same one


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_evaluate_cli_precision_and_unknown_label(fast_bundle: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "evaluate", str(data), "--bundle",
                           str(fast_bundle), "--out", str(tmp_path / "ev"), "--precision",
                           "int8"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime int8" in done.stdout and "Crystals vs rest" in done.stdout
    (data / "sludge").mkdir()
    write_image(data / "sludge" / "x.jpg", np.full((64, 64, 3), 128, np.uint8))
    bad = subprocess.run([sys.executable, "-m", "edgecrystal", "evaluate", str(data), "--bundle",
                          str(fast_bundle), "--out", str(tmp_path / "ev2")],
                         capture_output=True, text=True, timeout=300, check=False)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode != 0 and len(lines) == 1 and "sludge" in lines[0]
