"""`edgecrystal evaluate` on a folder of photos with hand-drawn masks (the layout of the shared
real samples: labels.csv path,label and masks/manifest.csv path,mask,...): per-image Dice and an
outline contact sheet. The folder is built from synthetic wells here; the shared real samples are
used where they exist beside the repository."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.dataset import load_dataset
from edgecrystal.imageio import read_image, write_image
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.randomized import render_random

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real-samples"


def real_layout(root: Path, n: int = 5) -> Path:
    """n wells as imager photos: <imager>/<name>.jpg, masks/<imager>/<name>.png, the CSVs."""
    manifest, labels = [], []
    for i in range(n):
        imager = "imager-a" if i % 2 else "imager-b"
        rgb, mask, _ = render_random(image_rng(31, i), 400 + 40 * i, 300, "crystals")
        image, mask_rel = f"{imager}/well_{i}.jpg", f"masks/{imager}/well_{i}.png"
        (root / imager).mkdir(parents=True, exist_ok=True)
        (root / "masks" / imager).mkdir(parents=True, exist_ok=True)
        write_image(root / image, rgb)
        write_image(root / mask_rel, mask.astype(np.uint8) * 255)
        manifest.append({"path": image, "mask": mask_rel, "drops": "1", "quality": "good",
                         "note": ""})
        labels.append({"path": image, "label": "crystals" if i % 3 else ""})
    with (root / "masks" / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "mask", "drops", "quality", "note"])
        writer.writeheader()
        writer.writerows(manifest)
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(labels)
    return root


def test_manifest_layout_is_read(tmp_path: Path) -> None:
    ds = load_dataset(real_layout(tmp_path / "photos"))
    assert ds.layout == "mask-manifest"
    assert len(ds.records) == len(ds.with_masks()) == 5
    assert {r.label for r in ds.records} == {"crystals", None}
    assert all(r.mask is not None and r.mask.is_file() for r in ds.records)
    assert ds.records[0].meta["quality"] == "good"


def test_the_default_classes_are_matched_however_a_layout_spells_them(tmp_path: Path) -> None:
    """MARCO's class folders (Clear, Crystals, ...) are the bundles' classes, whatever the
    case; another word (a typo, a class of the user's own) keeps its name."""
    folders = tmp_path / "folders"
    for name in ("Clear", "Crystals", "PRECIPITATE", "Other", "Skin"):
        (folders / name).mkdir(parents=True)
        write_image(folders / name / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    assert load_dataset(folders).classes_seen == [
        "Skin", "clear", "crystals", "other", "precipitate"]
    sheet = tmp_path / "sheet"
    sheet.mkdir()
    for name in ("a", "b", "c", "d"):
        write_image(sheet / f"{name}.jpg", np.zeros((8, 8, 3), np.uint8))
    (sheet / "labels.csv").write_text(
        "image,label\na.jpg, CRYSTALS \nb.jpg,Crystal\nc.jpg,\nd.jpg,Clear\n")
    assert [r.label for r in load_dataset(sheet).records] == [
        "crystals", "Crystal", None, "clear"]
    # Saved by a spreadsheet as "CSV UTF-8": a byte-order mark and CRLF line ends.
    (sheet / "labels.csv").write_bytes(b"\xef\xbb\xbfimage,label\r\na.jpg,Crystals\r\n")
    assert [r.label for r in load_dataset(sheet).records] == ["crystals"]
    photos = real_layout(tmp_path / "photos", n=2)
    (photos / "labels.csv").write_text("path,label\nimager-b/well_0.jpg,Crystals\n")
    assert {r.label for r in load_dataset(photos).records} == {"crystals", None}
    # The real samples' `path,label` sheet without its masks: the sheet alone lists the photos.
    (photos / "masks" / "manifest.csv").unlink()
    alone = load_dataset(photos)
    assert alone.layout == "labels.csv"
    assert [(r.image.name, r.label) for r in alone.records] == [("well_0.jpg", "crystals")]


def test_manifest_without_labels_and_broken_manifest(tmp_path: Path) -> None:
    root = real_layout(tmp_path / "photos", n=2)
    (root / "labels.csv").unlink()
    assert all(r.label is None for r in load_dataset(root).records)
    (root / "masks" / "manifest.csv").write_text("file,other\nx,y\n")
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "data", "check", str(root)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "manifest.csv" in done.stdout + done.stderr


def _evaluate(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", "evaluate", str(data), "--out",
                           str(out), *extra], capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.mark.slow
def test_evaluate_real_layout_with_the_shipped_finder(tmp_path: Path) -> None:
    data = real_layout(tmp_path / "photos")
    done = _evaluate(data, tmp_path / "report")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = report["finder"]["per_image"]
    assert sorted(r["image"] for r in rows) == sorted(
        str(r.image.relative_to(data)) for r in load_dataset(data).records)
    assert all(0.0 <= r["dice"] <= 1.0 for r in rows)
    assert report["finder"]["dice_min"] == min(r["dice"] for r in rows)
    sheet = read_image(tmp_path / "report" / "outlines.png")
    assert sheet.shape[0] >= 320 and sheet.shape[1] == 5 * 320
    md = (tmp_path / "report" / "report.md").read_text()
    assert "imager-a/well_1.jpg" in md and "outlines.png" in md
    assert "Dice" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "masks" / "manifest.csv").is_file(),
                    reason="../shared/real-samples is not beside the repository")
def test_evaluate_the_shared_real_samples(tmp_path: Path) -> None:
    done = _evaluate(REAL, tmp_path / "report")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["finder"]["images"] == 17
    assert (tmp_path / "report" / "outlines.png").is_file()
    # The default bundle's classifier on the 16 labelled photos, through ONNX Runtime.
    c = report["classifier"]
    assert c["images"] == 16 and c["runtime"] == "onnxruntime fp32"
    assert (tmp_path / "report" / "worst.png").is_file()
