"""Result files, the done-check, overlays and the folder summary, on real files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from edgecrystal.pipeline import ModelInfo, Scored
from edgecrystal.results import (
    STALE_TEMPORARY_S,
    SUMMARY_NAME,
    Summaries,
    is_done,
    is_own_output,
    load_result,
    overlay_path,
    remove_stale_temporaries,
    result_path,
    well_of,
    write_result,
)

MODEL = ModelInfo("/b", "fp123", ("clear", "crystals"), "onnxruntime", "fp32")


def _scored(path: Path, ok: bool = True) -> Scored:
    path.write_bytes(b"pretend image bytes")
    r = Scored(path, os.stat(path), width=40, height=30, sha256="ab" * 32, size_bytes=19,
               timings_ms={"read": 1.0})
    if ok:
        r.label, r.scores = "crystals", {"clear": 0.25, "crystals": 0.75}
        r.found, r.box, r.area_px = True, (5, 4, 25, 20), 200
        r.preview = np.full((30, 40, 3), 90, np.uint8)
        r.outline = np.array([[[5, 4]], [[24, 4]], [[24, 19]], [[5, 19]]], np.int32)
    else:
        r.status, r.error_kind, r.error_reason = "error", "truncated", "JPEG is cut short"
    return r


def test_result_record_schema(tmp_path: Path) -> None:
    img = tmp_path / "A01_1.jpg"
    out = write_result(_scored(img), MODEL, overlay=True)
    assert out == result_path(img) == tmp_path / "A01_1.jpg.edgecrystal.json"
    rec = json.loads(out.read_text())
    assert rec["schema"] == "edgecrystal-result" and rec["schema_version"] == 3
    assert rec["status"] == "ok" and rec["label"] == "crystals"
    assert rec["scores"] == {"clear": 0.25, "crystals": 0.75}
    assert rec["drop"] == {"found": True, "box": [5, 4, 25, 20], "area_px": 200,
                           "area_fraction": round(200 / 1200, 6)}
    assert rec["image"]["name"] == "A01_1.jpg" and rec["image"]["size_bytes"] == 19
    assert rec["image"]["mtime_ns"] == img.stat().st_mtime_ns
    assert rec["model"]["fingerprint"] == "fp123" and rec["model"]["backend"] == "onnxruntime"
    assert "write" in rec["timings_ms"] and rec["created"] and rec["edgecrystal_version"]
    assert out.stat().st_mode & 0o777 == 0o644 & ~_umask()
    import cv2

    picture = cv2.imread(str(overlay_path(img)))
    assert picture is not None and picture.shape[:2] == (30, 40)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_error_record(tmp_path: Path) -> None:
    img = tmp_path / "bad.jpg"
    rec = load_result(write_result(_scored(img, ok=False), MODEL, overlay=True))
    assert rec["status"] == "error"
    assert rec["error"] == {"kind": "truncated", "reason": "JPEG is cut short"}
    assert "label" not in rec and "scores" not in rec
    assert not overlay_path(img).exists()


def test_done_check_follows_size_mtime_and_bundle(tmp_path: Path) -> None:
    img = tmp_path / "A02.jpg"
    assert not is_done(img, "fp123")
    write_result(_scored(img), MODEL)
    assert is_done(img, "fp123")
    assert not is_done(img, "another-bundle")
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not is_done(img, "fp123")  # touched: a new image as far as we know
    write_result(_scored(img), MODEL)
    img.write_bytes(b"different length now")
    assert not is_done(img, "fp123")
    result_path(img).write_text("{ torn")
    assert not is_done(img, "fp123") and load_result(result_path(img)) is None


def test_transient_error_is_retried_after_chmod(tmp_path: Path) -> None:
    img = tmp_path / "A03.jpg"
    r = _scored(img, ok=False)
    r.error_kind, r.error_reason = "unreadable", "permission denied"
    write_result(r, MODEL)
    assert is_done(img, "fp123")
    img.chmod(0o600)  # changes ctime only: the cause may be gone
    assert not is_done(img, "fp123")


def test_names() -> None:
    assert well_of("A01_1.jpg") == "A01"
    # Names that merely contain a well-like token are not guessed (tests/test_naming.py).
    assert well_of("plate3-h7.png") is None
    assert well_of("AF48_2.tif") == "AF48"
    assert well_of("image.jpg") is None
    assert is_own_output("A01_1.jpg.edgecrystal.json")
    assert is_own_output("A01_1.jpg.edgecrystal.png")
    assert is_own_output(SUMMARY_NAME)
    assert is_own_output(".A01_1.jpg.edgecrystal.json.x1y2.tmp")
    assert not is_own_output("A01_1.jpg")


def test_summary_rebuilds_and_tracks_changes(tmp_path: Path) -> None:
    s = Summaries(["clear", "crystals"])
    for name in ("B02_1.jpg", "A01_1.jpg"):
        write_result(_scored(tmp_path / name), MODEL)
    write_result(_scored(tmp_path / "C03_1.jpg", ok=False), MODEL)
    out = s.update(tmp_path)
    rows = list(csv.DictReader(out.open()))
    assert [r["image"] for r in rows] == ["A01_1.jpg", "B02_1.jpg", "C03_1.jpg"]
    assert rows[0]["well"] == "A01" and rows[0]["label"] == "crystals"
    assert float(rows[0]["crystals"]) == 0.75
    assert rows[2]["status"] == "error" and rows[2]["error_kind"] == "truncated"
    (tmp_path / "B02_1.jpg").unlink()  # image gone: its row goes too
    rows = list(csv.DictReader(s.update(tmp_path).open()))
    assert [r["image"] for r in rows] == ["A01_1.jpg", "C03_1.jpg"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path: Path) -> None:
    """Only our result/overlay temporaries, and only those older than a live write can be."""
    import time

    names = {
        "stale_result": ".A01_1.jpg.edgecrystal.json.k2x9ab1c.tmp",
        "stale_overlay": ".A01_1.jpg.edgecrystal.png.q81zzb0d.tmp",
        "young_result": ".A02_1.jpg.edgecrystal.json.p0c3kd77.tmp",
        "someone_elses": ".upload.jpg.tmp",
        "image": "A01_1.jpg",
        "result": "A01_1.jpg.edgecrystal.json",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    aged = time.time() - STALE_TEMPORARY_S - 1
    for key in ("stale_result", "stale_overlay", "someone_elses", "image", "result"):
        os.utime(tmp_path / names[key], (aged, aged))
    assert remove_stale_temporaries(tmp_path) == 2
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {names[k] for k in ("young_result", "someone_elses", "image", "result")}
    assert remove_stale_temporaries(tmp_path / "missing") == 0
