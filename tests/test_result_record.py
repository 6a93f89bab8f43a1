"""The typed result record: its JSON both ways, the schema_version check, and the crystal fields
in the result file and the folder summary, on real files (CrystalBox lists built here: no model)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.pipeline import ModelInfo, Scored
from edgecrystal.results import (
    SCHEMA_VERSION,
    ResultRecord,
    ResultSchemaError,
    Summaries,
    is_done,
    read_result,
    result_path,
    write_result,
)

MODEL = ModelInfo("/b", "fp123", ("clear", "crystals"), "onnxruntime", "fp32")
BOXES = [CrystalBox((10, 12, 40, 30), area_px=300, score=0.95, kind="single"),
         CrystalBox((50, 50, 110, 70), area_px=500, score=0.5),
         CrystalBox((60, 5, 80, 45), area_px=260, score=0.9)]


def _scored(path: Path, crystals: list[CrystalBox] | None = None, ok: bool = True) -> Scored:
    path.write_bytes(b"pretend image bytes")
    r = Scored(path, os.stat(path), width=160, height=120, sha256="ab" * 32, size_bytes=19,
               timings_ms={"read": 1.0})
    if ok:
        r.label, r.scores = "crystals", {"clear": 0.25, "crystals": 0.75}
        r.crystals_hit, r.uncertain = True, False
        r.found, r.box, r.area_px = True, (5, 4, 125, 100), 9000
        r.crystals = crystals
    else:
        r.status, r.error_kind, r.error_reason = "error", "truncated", "JPEG is cut short"
    return r


def _written(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_crystal_fields_in_the_result_file(tmp_path: Path) -> None:
    img = tmp_path / "A01_1.jpg"
    data = _written(write_result(_scored(img, BOXES), MODEL))
    assert data["crystals"] == [
        {"box": [10, 12, 40, 30], "area_px": 300, "score": 0.95, "kind": "single"},
        {"box": [50, 50, 110, 70], "area_px": 500, "score": 0.5},
        {"box": [60, 5, 80, 45], "area_px": 260, "score": 0.9}]
    # Largest by longest side is the faint 60-wide box; the target aims at the largest of the
    # certain ones (score >= 0.8 x best): the 40-tall box at (70, 25).
    assert data["crystal_count"] == 3 and data["largest_crystal_px"] == 60
    assert data["target"] == [70, 25]
    record = read_result(result_path(img))
    assert record is not None and record.crystals == BOXES and record.target == (70, 25)


def test_crystal_fields_absent_without_a_crystal_model(tmp_path: Path) -> None:
    without = _written(write_result(_scored(tmp_path / "A01_1.jpg", None), MODEL))
    assert not {"crystals", "crystal_count", "largest_crystal_px", "target"} & without.keys()
    error = _written(write_result(_scored(tmp_path / "A02_1.jpg", BOXES, ok=False), MODEL))
    assert "crystals" not in error and "crystal_count" not in error
    none_found = _written(write_result(_scored(tmp_path / "A03_1.jpg", []), MODEL))
    assert none_found["crystals"] == [] and none_found["crystal_count"] == 0
    assert none_found["largest_crystal_px"] == 0 and none_found["target"] is None


def test_summary_has_crystal_columns(tmp_path: Path) -> None:
    write_result(_scored(tmp_path / "A01_1.jpg", BOXES), MODEL)
    write_result(_scored(tmp_path / "A02_1.jpg", None), MODEL)
    write_result(_scored(tmp_path / "A03_1.jpg", []), MODEL)
    out = Summaries(["clear", "crystals"]).update(tmp_path)
    assert out is not None
    rows = {r["image"]: r for r in csv.DictReader(out.open())}
    assert (rows["A01_1.jpg"]["crystal_count"], rows["A01_1.jpg"]["largest_crystal_px"]) \
        == ("3", "60")
    assert (rows["A02_1.jpg"]["crystal_count"], rows["A02_1.jpg"]["largest_crystal_px"]) \
        == ("", "")
    assert (rows["A03_1.jpg"]["crystal_count"], rows["A03_1.jpg"]["largest_crystal_px"]) \
        == ("0", "0")


def test_json_round_trip_keeps_every_field(tmp_path: Path) -> None:
    scored = _scored(tmp_path / "A01_1.jpg", BOXES)
    scored.warnings = ["corrupt JPEG data: premature end"]
    for record in (ResultRecord.from_scored(scored, MODEL),
                   ResultRecord.from_scored(_scored(tmp_path / "A02.jpg", ok=False), MODEL)):
        data = record.to_json()
        again = ResultRecord.from_json(json.loads(json.dumps(data)))
        assert again == record and again.to_json() == data


def test_a_newer_schema_version_is_refused_in_one_line(tmp_path: Path) -> None:
    img = tmp_path / "A01_1.jpg"
    write_result(_scored(img, BOXES), MODEL)
    write_result(_scored(tmp_path / "A02_1.jpg", None), MODEL)
    data = _written(result_path(img))
    data["schema_version"] = SCHEMA_VERSION + 1
    result_path(img).write_text(json.dumps(data))
    with pytest.raises(ResultSchemaError) as caught:
        read_result(result_path(img))
    message = str(caught.value)
    assert "\n" not in message and str(result_path(img)) in message
    assert f"schema_version {SCHEMA_VERSION + 1} is newer" in message
    assert not is_done(img, "fp123")  # scoring again writes one this code reads
    out = Summaries(["clear", "crystals"]).update(tmp_path)  # the others' rows still there
    assert out is not None
    assert [r["image"] for r in csv.DictReader(out.open())] == ["A02_1.jpg"]


@pytest.mark.parametrize(("field", "value", "says"), [
    ("schema_version", "2", "unknown schema_version '2'"),
    ("schema_version", 0, "unknown schema_version 0"),
    ("crystals_hit", "yes", "field crystals_hit is 'yes', expected true or false"),
    ("crystals", [{"box": [1, 2, 3]}], "field crystals[0].box is [1, 2, 3], expected"),
])
def test_unreadable_fields_are_named(tmp_path: Path, field: str, value: object,
                                     says: str) -> None:
    data = ResultRecord.from_scored(_scored(tmp_path / "A01.jpg", BOXES), MODEL).to_json()
    data[field] = value
    with pytest.raises(ResultSchemaError, match=says.replace("[", r"\[").replace("]", r"\]")):
        ResultRecord.from_json(data)


def test_a_version_1_file_still_reads(tmp_path: Path) -> None:
    """Version 1 had no crystals_hit, uncertain, warnings or crystal fields."""
    img = tmp_path / "A01_1.jpg"
    data = ResultRecord.from_scored(_scored(img, None), MODEL).to_json()
    data["schema_version"] = 1
    for key in ("crystals_hit", "uncertain"):
        del data[key]
    result_path(img).write_text(json.dumps(data))
    record = read_result(result_path(img))
    assert record is not None and record.schema_version == 1
    assert record.crystals_hit is None and record.crystals is None and record.label == "crystals"
    assert is_done(img, "fp123")


def test_a_version_2_file_still_reads_and_stays_done(tmp_path: Path) -> None:
    """Version 2 (before the crystal model's fields) reads with crystals None; it stays done
    for the bundle that wrote it (a bundle that gains a crystal model has another fingerprint,
    so its images are scored again, the version is no reason to)."""
    img = tmp_path / "A01_1.jpg"
    data = ResultRecord.from_scored(_scored(img, None), MODEL).to_json()
    assert SCHEMA_VERSION == 3 and data["schema_version"] == 3
    data["schema_version"] = 2
    result_path(img).write_text(json.dumps(data))
    record = read_result(result_path(img))
    assert record is not None and record.schema_version == 2
    assert record.crystals is None and record.crystal_count is None and record.target is None
    assert record.crystals_hit is not None and record.label == "crystals"
    assert is_done(img, "fp123")
    assert not is_done(img, "another-fingerprint")
