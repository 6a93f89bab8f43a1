"""`build-engines --calib` on a folder of the imager's own unlabelled images (the best
calibration data there is: the pictures the model will see), stratified by imager and plate
where the names say so, so that one busy plate does not set every range."""

from __future__ import annotations

import json
from pathlib import Path

from test_build_integrity import imported_copy
from test_daemon import jpeg_bytes

from edgecrystal.calibration.select import (
    IMAGE_FOLDER,
    calibration_data,
    calibration_sets,
    image_folder,
)
from edgecrystal.converters.build import Options, build_engines
from edgecrystal.results import is_own_output


def imager_folder(root: Path) -> dict[str, list[Path]]:
    """A flat export folder as an XChem/Formulatrix imager writes it: 30 drops of plate 9b5j,
    6 of plate 97wo, names carry the barcode; plus what edgecrystal and uploads leave there."""
    root.mkdir(parents=True)
    plates: dict[str, list[Path]] = {"9b5j": [], "97wo": []}
    for plate, count in (("9b5j", 30), ("97wo", 6)):
        for i in range(count):
            path = root / f"{plate}_{i % 12 + 1:02d}{'ABCDEFGH'[i // 12]}_1.jpg"
            path.write_bytes(jpeg_bytes(len(plates["9b5j"]) + i + (100 if plate == "97wo"
                                                                   else 0)))
            plates[plate].append(path)
    (root / "9b5j_01A_1.jpg.edgecrystal.png").write_bytes(jpeg_bytes(999))  # an overlay
    (root / "9b5j_01A_1.jpg.edgecrystal.json").write_text("{}")
    (root / ".9b5j_02A_1.jpg.part").write_bytes(b"uploading")
    return plates


def test_an_unlabelled_image_folder_is_stratified_by_plate(tmp_path: Path) -> None:
    plates = imager_folder(tmp_path / "imager")
    dataset = image_folder(tmp_path / "imager", is_own_output)  # as build-engines asks
    assert len(dataset.records) == 36 and all(r.label is None for r in dataset.records)
    assert {r.meta["imager_plate"] for r in dataset.records} == {"xchem 9b5j", "xchem 97wo"}
    sets = calibration_sets(tmp_path / "imager", {"finder": 32, "classifier": 32}, count=12,
                            is_output=is_own_output)
    chosen = {entry["path"] for entry in sets["finder"].images}
    assert len(chosen) == 12
    # Round-robin over the two plates: all six of the small plate, six of the busy one.
    assert {p.name for p in plates["97wo"]} <= chosen
    assert not any(".edgecrystal." in name or name.startswith(".") for name in chosen)
    assert sets["classifier"].inputs.shape == (12, 32, 32, 3)


def test_build_engines_calibrates_on_the_imagers_own_images(fast_bundle: Path,
                                                           tmp_path: Path) -> None:
    root = imported_copy(fast_bundle, tmp_path)
    imager_folder(tmp_path / "imager")
    report = build_engines(root, Options(precisions=("int8",), calib=tmp_path / "imager",
                                         calib_count=8, force=True))
    assert [s["action"] for s in report.steps if s["precision"] == "int8"] == ["made", "made"]
    record = json.loads((root / "calibration" / "classifier.json").read_text())
    assert len(record["images"]) == 8 and record["data"] == str((tmp_path / "imager").resolve())
    assert {entry["path"].split("_")[0] for entry in record["images"]} == {"9b5j", "97wo"}


def test_plate_folders_are_not_taken_for_class_folders(tmp_path: Path) -> None:
    """An imager root of plate folders looks like the class-per-folder layout; its names are
    an imager's, so it is read as unlabelled images of two plates, not as classes plateA/B."""
    for plate in ("plateA", "plateB"):
        (tmp_path / "root" / plate).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "root" / plate / f"A{i + 1:02d}_1.jpg").write_bytes(jpeg_bytes(i))
    dataset = calibration_data(tmp_path / "root", is_own_output)
    assert dataset.layout == IMAGE_FOLDER and len(dataset.records) == 8
    assert all(r.label is None for r in dataset.records)
    assert {r.meta["plate"] for r in dataset.records} == {"plateA", "plateB"}
    # A real class-folder data set (names no imager wrote) is still read as one.
    (tmp_path / "marco" / "crystals").mkdir(parents=True)
    (tmp_path / "marco" / "crystals" / "img_0001.jpg").write_bytes(jpeg_bytes(1))
    assert calibration_data(tmp_path / "marco").records[0].label == "crystals"
