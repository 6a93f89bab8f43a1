"""Close-up views (`synth --closeup-fraction`): the drop filling the frame, as a zoomed imager
shows it, with masks cut to match and labels that stay true."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.errors import UsageError
from edgecrystal.imageio import read_image
from edgecrystal.synth import generate_dataset
from edgecrystal.synth.closeup import MIN_DROP_COVER, closeup

STYLES = ["marco", "formulatrix", "brightfield", "minstrel", "random"]


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def closeups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("closeup") / "set"
    generate_dataset(out, 16, seed=5, size=(224, 288), max_aspect=1.333, styles=STYLES,
                     closeup_fraction=0.7, workers=1)
    return out


def test_closeups_fill_the_frame_and_keep_their_label(closeups: Path) -> None:
    rows = _rows(closeups)
    views = [r["view"] for r in rows]
    assert set(views) == {"closeup", "well"} and views.count("closeup") >= 5, views
    for row in rows:
        image = read_image(closeups / row["image"])
        drop = read_image(closeups / row["mask"])[..., 0] > 0
        crystals = read_image(closeups / row["crystals"])[..., 0] > 0
        assert drop.shape == crystals.shape == image.shape[:2]
        if row["view"] != "closeup":
            assert drop.mean() < MIN_DROP_COVER  # a whole well: wall and background show
            continue
        assert drop.mean() >= MIN_DROP_COVER - 0.02, row["image"]  # resizing moves the edge
        # Any crystal makes it crystals: a crystals close-up shows one, no other class has one.
        assert crystals.any() == (row["label"] == "crystals"), row


def test_same_seed_same_bytes_and_no_fraction_no_view_column(tmp_path: Path) -> None:
    def digest(root: Path) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.*"))]

    for name in ("a", "b"):
        generate_dataset(tmp_path / name, 4, seed=9, size=192, styles=STYLES,
                         closeup_fraction=1.0, workers=1)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    generate_dataset(tmp_path / "plain", 2, seed=9, size=96, styles=STYLES, workers=1)
    assert "view" not in _rows(tmp_path / "plain")[0]
    assert "view" in _rows(tmp_path / "a")[0]


def test_a_small_drop_or_a_crystals_well_without_crystals_is_not_zoomed() -> None:
    rng = np.random.default_rng(0)
    rgb = np.zeros((600, 800, 3), np.uint8)
    mask = np.zeros((600, 800), bool)
    mask[250:330, 350:450] = True  # 80 px tall: zooming to 300 px would invent detail
    none = np.zeros_like(mask)
    assert closeup(rng, rgb, mask, none, "clear", 400, 300) is None
    mask[50:550, 100:700] = True
    assert closeup(rng, rgb, mask, none, "crystals", 400, 300) is None
    view = closeup(rng, rgb, mask, none, "clear", 400, 300)
    assert view is not None and view[0].shape == (300, 400, 3) and view[1].all()


def test_a_fraction_outside_0_to_1_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="closeup-fraction"):
        generate_dataset(tmp_path / "x", 4, closeup_fraction=1.5)
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "synth", str(tmp_path / "y"),
                           "--n", "4", "--closeup-fraction", "-0.1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "edgecrystal: error: --closeup-fraction must be in [0, 1] (got -0.1)"]
