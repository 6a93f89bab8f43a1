"""`check_dataset` on a clean synthetic set, then on copies broken one way at a time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.datacheck import check_dataset
from edgecrystal.imageio import write_image
from edgecrystal.synth import generate_dataset


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("check") / "clean"
    generate_dataset(out, 12, seed=4, size=96, workers=1)
    return out


@pytest.fixture()
def copy(clean: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(clean, dst)
    return dst


def _kinds(issues) -> set[str]:
    return {i.kind for i in issues}


def _first(root: Path, sub: str) -> Path:
    return sorted((root / sub).iterdir())[0]


def test_clean_synth_set_passes(clean: Path) -> None:
    report = check_dataset(clean)
    assert report.usable, report.render()
    assert report.images == 12 and report.masks == 12
    assert report.counts == {"clear": 3, "crystals": 3, "precipitate": 3, "other": 3}
    # 3 per class is few: a warning, not an error.
    assert _kinds(report.warnings) == {"class_small"}
    data = json.loads(report.to_json())
    assert data["usable"] is True and data["errors"] == []


def test_truncated_image(copy: Path) -> None:
    img = _first(copy, "images")
    img.write_bytes(img.read_bytes()[:300])
    report = check_dataset(copy)
    assert not report.usable
    assert "image_truncated" in _kinds(report.errors)
    assert any(i.path == f"images/{img.name}" for i in report.errors)


def test_text_file_named_png(copy: Path) -> None:
    mask = _first(copy, "masks")
    mask.write_text("this is not a picture\n")
    report = check_dataset(copy)
    assert _kinds(report.errors) == {"mask_not_an_image"}


def test_deleted_mask(copy: Path) -> None:
    _first(copy, "masks").unlink()
    report = check_dataset(copy)
    assert _kinds(report.errors) == {"mask_missing"}
    assert report.masks == 11


def test_blank_and_wrong_size_and_grey_masks(copy: Path) -> None:
    masks = sorted((copy / "masks").iterdir())
    write_image(masks[0], np.zeros((96, 96), np.uint8))
    write_image(masks[1], np.full((50, 60), 255, np.uint8))
    grey = np.zeros((96, 96), np.uint8)
    grey[20:60, 20:60] = 255
    grey[30:40, 30:40] = 128
    write_image(masks[2], grey)
    report = check_dataset(copy)
    assert _kinds(report.errors) == {"mask_blank", "mask_size"}
    assert "mask_not_binary" in _kinds(report.warnings)
    size = next(i for i in report.errors if i.kind == "mask_size")
    assert "60x50" in size.message and "96x96" in size.message


def test_unknown_label_and_class_list(copy: Path) -> None:
    labels = copy / "labels.csv"
    lines = labels.read_text().splitlines()
    first = lines[1].split(",")
    first[2] = "sparkles"
    labels.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    report = check_dataset(copy)
    assert _kinds(report.errors) == {"label_unknown"}
    assert report.counts["sparkles"] == 1
    # The same label is fine when the class list names it.
    ok = check_dataset(copy, classes=["clear", "crystals", "precipitate", "other", "sparkles"])
    assert ok.usable


def test_duplicates_by_content(copy: Path) -> None:
    images = sorted((copy / "images").iterdir())
    shutil.copyfile(images[0], images[1])
    report = check_dataset(copy)
    assert report.usable
    dup = [i for i in report.warnings if i.kind == "duplicate_images"]
    assert len(dup) == 1 and images[0].name in dup[0].message


def test_class_per_folder_layout(clean: Path, tmp_path: Path) -> None:
    root = tmp_path / "folders"
    for cls in ("clear", "crystals"):
        (root / "train" / cls).mkdir(parents=True)
    images = sorted((clean / "images").iterdir())
    for i, img in enumerate(images[:6]):
        shutil.copyfile(img, root / "train" / ("clear" if i % 2 else "crystals") / img.name)
    (root / "train" / "crystals" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0junk")
    report = check_dataset(root, classes=["clear", "crystals"])
    assert report.layout == "class-folders"
    assert report.counts == {"clear": 3, "crystals": 4}
    assert report.masks == 0 and "mask_not_listed" not in _kinds(report.warnings)
    assert {i.kind for i in report.errors} <= {"image_truncated", "image_not_an_image"}
    assert len(report.errors) == 1


def test_folder_without_data(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = check_dataset(tmp_path / "empty")
    assert not report.usable and _kinds(report.errors) == {"unloadable"}


def test_folder_without_data_is_not_called_an_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    verdicts = check_dataset(tmp_path / "empty").verdicts()
    assert "unreadable" not in " ".join(verdicts.values())
    assert verdicts["finder"].startswith("NOT usable: ") and "no labels.csv" in verdicts["finder"]


def _manifest_layout(root: Path, labels: dict[str, str]) -> Path:
    """The real samples' layout: labels.csv (path,label) + masks/manifest.csv (path,mask,...)."""
    rng = np.random.default_rng(0)
    rows = ["path,mask,drops,quality,note"]
    (root / "photos").mkdir(parents=True)
    (root / "masks" / "photos").mkdir(parents=True)
    for name in labels:
        write_image(root / "photos" / name, rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        mask = np.zeros((40, 50), np.uint8)
        mask[10:30, 10:40] = 255
        write_image(root / "masks" / "photos" / f"{Path(name).stem}.png", mask)
        rows.append(f"photos/{name},masks/photos/{Path(name).stem}.png,1,good,")
    (root / "masks" / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "labels.csv").write_text(
        "path,label\n" + "".join(f"photos/{n},{label}\n" for n, label in labels.items()))
    return root


def test_mask_manifest_layout_counts_its_masks_and_unlabelled_rows(tmp_path: Path) -> None:
    """It said "0 with masks, finder: NOT usable" and "classifier: NOT usable" for one row
    without a label, which `train classifier` skips."""
    root = _manifest_layout(tmp_path / "real", {"a.jpg": "clear", "b.jpg": "crystals",
                                                "c.jpg": "", "d.jpg": "clear"})
    report = check_dataset(root)
    assert report.layout == "mask-manifest" and report.masks == 4
    assert report.usable and report.errors == []
    assert [(i.kind, i.path) for i in report.warnings if i.kind == "unlabelled"] == [
        ("unlabelled", "photos/c.jpg")]
    verdicts = report.verdicts()
    assert verdicts["finder"] == "usable (4 images with masks)"
    assert verdicts["classifier"] == "usable (3 labelled images in 2 classes; 1 unlabelled " \
                                     "image(s) skipped)"


def test_real_samples_layout(real_samples: Path) -> None:
    report = check_dataset(real_samples)
    assert report.masks == 17 and report.images == 17 and report.errors == []
    assert [i.path for i in report.warnings if i.kind == "unlabelled"] == [
        "marco-gsk/57465.jpeg"]
    assert report.verdicts()["finder"] == "usable (17 images with masks)"
    assert report.verdicts()["classifier"].startswith("usable (16 labelled images in 4 classes")
