"""The one input rule and folder walk that `score`, `bench --images` and the daemon share."""

from __future__ import annotations

import os
from pathlib import Path

from edgecrystal.daemon.watcher import Filter
from edgecrystal.discovery import collect_images, is_input_name, link_out_of, scan
from edgecrystal.imageio import IMAGE_SUFFIXES


def _plate(root: Path) -> dict[str, bool]:
    """A folder as an imager and edgecrystal leave it: {relative path: is an input}."""
    files = {
        "A01_1.jpg": True, "A02_1.JPEG": True, "day3/B01_1.png": True, "day3/B02_1.TIF": True,
        "notes.txt": False, ".A03_1.jpg.part.jpg": False, "A01_1.jpg.edgecrystal.json": False,
        "A01_1.jpg.edgecrystal.png": False, "edgecrystal-summary.csv": False,
        ".hidden/C01_1.jpg": False,
    }
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "folder.jpg").mkdir()  # a folder with an image's name is not a file to score
    return files


def test_input_names() -> None:
    assert is_input_name("A01_1.jpg") and is_input_name("x.TIFF")
    assert not is_input_name(".upload.jpg")
    assert not is_input_name("A01_1.jpg.edgecrystal.json")
    assert not is_input_name("A01_1.jpg.edgecrystal.png")
    assert not is_input_name("edgecrystal-summary.csv")
    assert not is_input_name("A01_1.jpg", extensions=(".png",))
    assert all(is_input_name(f"a{suffix}") for suffix in IMAGE_SUFFIXES)


def test_score_and_the_daemon_pick_the_same_files(tmp_path: Path) -> None:
    files = _plate(tmp_path)
    wanted = sorted(tmp_path / rel for rel, is_input in files.items() if is_input)
    collected = collect_images([tmp_path], recursive=True)
    assert sorted(collected) == wanted
    name_filter = Filter([tmp_path], IMAGE_SUFFIXES)
    daemon_view = [p for p in scan([tmp_path], True, name_filter.wanted_name)
                   if name_filter.check(p) is None]
    assert sorted(daemon_view) == wanted
    top_only = collect_images([tmp_path], recursive=False)
    assert sorted(top_only) == [p for p in wanted if p.parent == tmp_path]


def test_named_files_are_taken_as_given_once(tmp_path: Path) -> None:
    _plate(tmp_path)
    notes = tmp_path / "notes.txt"
    first = tmp_path / "A01_1.jpg"
    got = collect_images([notes, first, tmp_path], recursive=False)
    assert got[:2] == [notes, first]
    assert len(got) == len(set(got)) and first in got


def test_symlinked_folders_are_not_entered(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Z01_1.jpg").write_bytes(b"x")
    plate = tmp_path / "plate"
    plate.mkdir()
    os.symlink(outside, plate / "link")
    assert collect_images([plate], recursive=True) == []


def test_links_out_of_the_folder_are_not_followed(tmp_path: Path) -> None:
    """`score` and the daemon share one rule: a link whose target is outside the root it was
    found under is not an input (it would be scored, indexed, then served by the page)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    plate = tmp_path / "plate"
    (plate / "day1").mkdir(parents=True)
    (plate / "A01_1.jpg").write_bytes(b"x")
    os.symlink(outside / "secret.jpg", plate / "B01_1.jpg")
    os.symlink(plate / "A01_1.jpg", plate / "day1" / "A01_1.jpg")  # stays inside: fine
    os.symlink(tmp_path / "nowhere.jpg", plate / "C01_1.jpg")
    inside = [plate / "A01_1.jpg", plate / "day1" / "A01_1.jpg"]
    assert collect_images([plate], recursive=True) == inside
    assert collect_images([plate], recursive=False) == [plate / "A01_1.jpg"]
    name_filter = Filter([plate], IMAGE_SUFFIXES)
    daemon_view = [p for p in scan([plate], True, name_filter.wanted_name)
                   if name_filter.check(p) is None]
    assert sorted(daemon_view) == sorted(inside)
    # The same rule, asked directly, says why.
    assert "out of" in str(link_out_of(plate / "B01_1.jpg", [plate]))
    assert link_out_of(plate / "day1" / "A01_1.jpg", [plate]) is None
