"""`edgecrystal score` as a user runs it: a subprocess, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from onnx_fixtures import write_wells

from edgecrystal.results import STALE_TEMPORARY_S


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", "score", *args],
                          capture_output=True, text=True, timeout=300)


def test_score_folder_skip_force_and_exit_codes(fast_bundle: Path, tmp_path: Path) -> None:
    plate = tmp_path / "plate"
    images = write_wells(plate, 3) + write_wells(plate / "day3", 2)
    (plate / "notes.txt").write_text("not an image, not a .jpg: ignored in folders")
    res = _run(str(fast_bundle), str(plate), "--recursive", "--backend", "onnxruntime",
               "--batch", "2", "--threads", "1", "--overlay")
    assert res.returncode == 0, res.stderr
    assert "5 scored" in res.stdout and "backend: onnxruntime" in res.stderr
    for p in images:
        rec = json.loads(Path(f"{p}.edgecrystal.json").read_text())
        assert rec["status"] == "ok" and rec["model"]["backend"] == "onnxruntime"
        assert Path(f"{p}.edgecrystal.png").is_file()
    assert (plate / "edgecrystal-summary.csv").is_file()
    assert (plate / "day3" / "edgecrystal-summary.csv").is_file()
    assert not Path(f"{plate / 'notes.txt'}.edgecrystal.json").exists()
    created = Path(f"{images[0]}.edgecrystal.json").read_text()

    # A writer killed mid-write left a temporary result in day3 long ago, another process is
    # writing one now: the next run clears the first and leaves the second alone.
    debris = plate / "day3" / f".{images[3].name}.edgecrystal.json.x81kq0zd.tmp"
    in_flight = plate / f".{images[0].name}.edgecrystal.json.m2h7c4sa.tmp"
    for temporary in (debris, in_flight):
        temporary.write_text("{")
    aged = time.time() - STALE_TEMPORARY_S - 1
    os.utime(debris, (aged, aged))
    again = _run(str(fast_bundle), str(plate), "-r", "--backend", "onnxruntime")
    assert again.returncode == 0 and "0 scored" in again.stdout
    assert not debris.exists() and in_flight.exists()
    assert Path(f"{images[0]}.edgecrystal.json").read_text() == created

    forced = _run(str(fast_bundle), str(images[0]), "--backend", "onnxruntime", "--force")
    assert forced.returncode == 0 and "1 scored" in forced.stdout


def test_broken_image_exits_1_and_missing_path_exits_2(fast_bundle: Path,
                                                       tmp_path: Path) -> None:
    good = write_wells(tmp_path / "p", 1)[0]
    bad = tmp_path / "p" / "B01_1.jpg"
    bad.write_text("hello")
    res = _run(str(fast_bundle), str(tmp_path / "p"), "--backend", "onnxruntime")
    assert res.returncode == 1
    assert "not_an_image" in res.stderr
    assert json.loads(Path(f"{bad}.edgecrystal.json").read_text())["status"] == "error"
    assert json.loads(Path(f"{good}.edgecrystal.json").read_text())["status"] == "ok"

    res = _run(str(fast_bundle), str(tmp_path / "nothere"))
    assert res.returncode == 2
    assert res.stderr.strip().startswith("edgecrystal: error: no such file or folder")
    assert "Traceback" not in res.stderr


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_workers_split_the_archive_skip_what_is_done_and_report_once(fast_bundle: Path,
                                                                      tmp_path: Path) -> None:
    import shutil

    archive = tmp_path / "archive"
    images = write_wells(archive / "plate1", 4) + write_wells(archive / "plate2", 3)
    (archive / "plate2" / "B01_1.jpg").write_text("not a picture")
    reference = tmp_path / "reference"
    shutil.copytree(archive, reference)
    one = _run(str(fast_bundle), str(reference), "-r", "--backend", "onnxruntime")
    assert one.returncode == 1, one.stderr  # the broken file
    # Two images were scored before (an archive re-score cut short): they are skipped.
    first = _run(str(fast_bundle), str(images[0]), str(images[4]), "--backend", "onnxruntime")
    assert first.returncode == 0, first.stderr

    res = _run(str(fast_bundle), str(archive), "-r", "--backend", "onnxruntime", "--workers",
               "2", "--batch", "2")
    assert res.returncode == 1, res.stderr
    assert "2 workers" in res.stderr and "6 scored" in res.stdout
    assert "skipped" in res.stdout and res.stdout.split("skipped")[1].split()[0] == "2"
    assert res.stderr.count("B01_1.jpg: not_an_image") == 1  # one report, one line per image
    for p in images:
        got = json.loads(Path(f"{p}.edgecrystal.json").read_text())
        want = json.loads((reference / p.relative_to(archive)).with_name(
            f"{p.name}.edgecrystal.json").read_text())
        assert got["scores"] == want["scores"] and got["label"] == want["label"], p
    assert (archive / "plate1" / "edgecrystal-summary.csv").is_file()
    before = {p: Path(f"{p}.edgecrystal.json").read_text() for p in images}

    again = _run(str(fast_bundle), str(archive), "-r", "--backend", "onnxruntime", "--workers",
                 "2")
    assert again.returncode == 0, again.stderr  # the broken file's error result vouches too
    assert "0 scored" in again.stdout
    assert all(Path(f"{p}.edgecrystal.json").read_text() == text for p, text in before.items())


def test_corrupt_jpeg_data_scores_ok_with_a_warning(fast_bundle: Path, tmp_path: Path) -> None:
    """libjpeg's "Corrupt JPEG data" went to stderr with no file name and the result said ok."""
    good, flipped = write_wells(tmp_path / "p", 2)
    data = bytearray(flipped.read_bytes())
    scan = data.find(b"\xff\xda") + 20
    for offset in range(scan + 50, len(data) - 200, 61):
        data[offset] ^= 0x24
    flipped.write_bytes(bytes(data))
    res = _run(str(fast_bundle), str(tmp_path / "p"), "--backend", "onnxruntime")
    assert res.returncode == 0, res.stderr
    rec = json.loads(Path(f"{flipped}.edgecrystal.json").read_text())
    assert rec["status"] == "ok"
    assert [w.split(":")[0] for w in rec["warnings"]] == ["corrupt JPEG data"]
    assert "warnings" not in json.loads(Path(f"{good}.edgecrystal.json").read_text())
    assert f"{flipped}: corrupt JPEG data" in res.stderr


def test_no_drop_reasons_in_result_files_and_the_report(fast_bundle: Path,
                                                        tmp_path: Path) -> None:
    """A drop that fills the well has no edge: the finder's fragments (1-3 % of the image) and
    blobs outside the well were cropped as drops (`found: true`)."""
    import cv2
    import numpy as np

    plate = tmp_path / "plate"
    [drop] = write_wells(plate, 1)
    pictures = {"B01_1.jpg": [], "B02_1.jpg": [((60, 45), 8)], "B03_1.jpg": [((108, 82), 22)]}
    for name, blobs in pictures.items():
        img = np.full((90, 120, 3), 70, np.uint8)  # the fixture finder marks light drops
        for centre, radius in blobs:
            cv2.circle(img, centre, radius, (200, 180, 150), -1)
        cv2.imwrite(str(plate / name), img)
    res = _run(str(fast_bundle), str(plate), "--backend", "onnxruntime")
    assert res.returncode == 0, res.stderr
    drops = {name: json.loads(Path(f"{plate / name}.edgecrystal.json").read_text())["drop"]
             for name in [drop.name, *pictures]}
    assert drops[drop.name]["found"] and "reason" not in drops[drop.name]
    assert {name: (d["found"], d.get("reason")) for name, d in drops.items()
            if name != drop.name} == {"B01_1.jpg": (False, "no edge"),
                                      "B02_1.jpg": (False, "too small"),
                                      "B03_1.jpg": (False, "outside the well")}
    assert ("no drop              3  (whole image classified: no edge 1, outside the well 1, "
            "too small 1)") in res.stdout
