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
