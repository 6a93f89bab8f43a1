"""The crystal model's training: ground truth read from crystal masks or a boxes file, cut with
the scoring crop's geometry, scored as boxes; `train crystals` end to end (slow tier)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import preprocess
from edgecrystal.dataset import load_dataset
from edgecrystal.errors import DataError
from edgecrystal.imageio import write_image
from edgecrystal.train.crystals import (
    box_scores,
    boxes_to_mask,
    crop_target,
    crystal_truth,
    map_boxes,
)


def _scene(width: int = 300, height: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey image with an off-centre elliptical drop holding one red 'crystal' rectangle and
    its ground truth."""
    import cv2

    rgb = np.full((height, width, 3), 120, np.uint8)
    drop = np.zeros((height, width), np.uint8)
    cv2.ellipse(drop, (170, 95), (110, 70), 0, 0, 360, 255, -1)
    rgb[drop > 0] = 200
    crystals = np.zeros((height, width), bool)
    crystals[80:104, 190:226] = True
    rgb[crystals] = (255, 0, 0)
    return rgb, drop > 0, crystals


@pytest.mark.parametrize("size", [32, 64, 128])
def test_target_lies_on_the_crystal_in_the_scoring_crop(size: int) -> None:
    """The target is cut, padded and resized as crop_drop cuts the pixels: the red pixels of
    the crop are the target's crystal pixels."""
    rgb, drop, crystals = _scene()
    crop = preprocess.crop_drop(rgb, drop.astype(np.float32), size, threshold=0.5)
    target = crop_target(crystals, crop.box, size, cover=0.5) > 0
    red = (crop.pixels[..., 0] > 200) & (crop.pixels[..., 1] < 90)
    overlap = (red & target).sum() / (red | target).sum()
    assert target.any() and overlap > 0.75, overlap
    # A pixel a quarter covered counts with cover 0.25: the target only grows.
    wide = crop_target(crystals, crop.box, size, cover=0.25) > 0
    assert (wide >= target).all() and wide.sum() >= target.sum()


def test_boxes_become_inscribed_ellipses() -> None:
    mask = boxes_to_mask([(10, 20, 50, 40)], 60, 80)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (10, 50, 20, 40)
    assert mask[30, 30] and not mask[20, 10]  # centre in, corner out
    assert 0.7 < mask.sum() / (40 * 20) < 0.85  # pi/4 of the box


def _dataset_with_boxes(root: Path, rows: str) -> None:
    rgb, drop, _ = _scene()
    for name in ("a", "b"):
        write_image(root / "images" / f"{name}.png", rgb)
        write_image(root / "masks" / f"{name}.png", drop.astype(np.uint8) * 255)
    (root / "labels.csv").write_text("image,mask,label\nimages/a.png,masks/a.png,crystals\n"
                                     "images/b.png,masks/b.png,clear\n")
    (root / "crystals.csv").write_text("path,x0,y0,x1,y1,kind,certainty,note\n" + rows)


def test_boxes_file_ground_truth(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _dataset_with_boxes(tmp_path, "images/a.png,190,80,226,104,single,sure,\n"
                                  "images/a.png,30,30,40,40,single,doubtful,maybe dust\n"
                                  "images/b.png,,,,,none,sure,clear drop\n")
    ds = load_dataset(tmp_path)
    truth = crystal_truth(ds)
    by_name = {p.name: v for p, v in truth.items()}
    assert by_name["a.png"] == [(190, 80, 226, 104)]  # the doubtful box is left out
    assert by_name["b.png"] == []  # checked, no crystal: a negative


def test_boxes_file_bad_row_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _dataset_with_boxes(tmp_path, "images/a.png,190,80,zz,104,single,sure,\n")
    with pytest.raises(DataError, match=r"crystals.csv:2: x0,y0,x1,y1 must be whole pixels"):
        crystal_truth(load_dataset(tmp_path))


def test_box_scores_match_boxes_one_to_one() -> None:
    target = np.zeros((32, 32), np.float32)
    target[2:8, 2:8] = 1
    target[20:30, 20:26] = 1
    assert map_boxes(target, 0.5, 1) == [(2, 2, 8, 8), (20, 20, 26, 30)]
    perfect = box_scores([target[..., None]], [target], 0.5, 1)
    assert perfect["recall"] == 1.0 and perfect["precision"] == 1.0
    assert perfect["pixel_iou"] == 1.0
    moved = target.copy()
    moved[20:30, 20:26] = 0
    moved[20:30, 24:30] = 1  # the second box moved by 4 px: IoU 2x10 / 10x10 = 0.2 < 0.5
    half = box_scores([moved[..., None]], [target], 0.5, 1)
    assert half["recall"] == 0.5 and half["precision"] == 0.5
    speck = np.zeros((32, 32), np.float32)
    speck[5, 5] = 1  # one pixel: below min_area, no box on a crystal-free crop
    empty = box_scores([speck[..., None]], [np.zeros((32, 32), np.float32)], 0.5, 2)
    assert empty["crystal_free_with_a_box"] == 0 and empty["crystal_free_crops"] == 1


# ------------------------------------------------------------------------------- slow tier
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_train_crystals_writes_a_bundle_section_and_fine_tunes(tmp_path: Path) -> None:
    from edgecrystal.bundle import Bundle
    from edgecrystal.models import load_model
    from edgecrystal.synth import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, 10, seed=5, size=160, classes=("crystals", "clear"), workers=1)
    run = _cli("train", "crystals", str(data), "--bundle", str(tmp_path / "b"), "--profile",
               "tiny")
    assert run.returncode == 0, run.stderr
    assert "boxes at IoU 0.5" in run.stdout
    bundle = Bundle.open(tmp_path / "b")
    section = bundle.require("crystals")
    assert section["model"] == "crystals.keras" and section["input_size"] == 32
    assert {"threshold", "min_area", "metrics", "hyperparameters"} <= set(section)
    assert section["data"]["images"] == 10 and section["data"]["with_crystals"] >= 3
    model = load_model(bundle.model_file("crystals"))
    out = np.asarray(model.predict_on_batch(np.zeros((2, 32, 32, 3), np.uint8)))
    assert out.shape == (2, 32, 32, 1) and ((out >= 0) & (out <= 1)).all()
    # Fine-tuning keeps the init's architecture and refuses to change it.
    tuned = _cli("train", "crystals", str(data), "--bundle", str(tmp_path / "t"), "--init",
                 str(tmp_path / "b"), "--epochs", "1")
    assert tuned.returncode == 0, tuned.stderr
    meta = json.loads((tmp_path / "t" / "bundle.json").read_text())
    assert meta["crystals"]["input_size"] == 32 and meta["crystals"]["profile"] == "finetune"
    refused = _cli("train", "crystals", str(data), "--bundle", str(tmp_path / "u"), "--init",
                   str(tmp_path / "b"), "--input-size", "64")
    assert refused.returncode != 0
    assert "fine-tuning cannot change it" in refused.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_train_crystals_without_ground_truth_is_one_line(tmp_path: Path) -> None:
    from edgecrystal.synth import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, 4, seed=5, size=96, workers=1)
    text = (data / "labels.csv").read_text().splitlines()
    header = text[0].split(",")
    drop = header.index("crystals")
    rows = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in text]
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    run = _cli("train", "crystals", str(data), "--bundle", str(tmp_path / "b"), "--profile",
               "tiny")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "crystal ground truth" in lines[0]
    assert not (tmp_path / "b").exists()
