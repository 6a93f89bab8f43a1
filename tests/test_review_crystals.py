"""The review page's crystals (issue 25): the boxes, count, largest size and target of each
inspection's image, read from its result file, in the image API and drawn on the well view;
over a real SQLite index through Starlette's test client speaking ASGI to the real app."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from crystal_results import add_crystals
from index_helpers import write_image, write_result_for
from starlette.testclient import TestClient

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader
from edgecrystal.ui.app import create_app

# The images are 96 x 72 (index_helpers.write_image).
BOXES = [CrystalBox((10, 12, 30, 20), area_px=90, score=0.9, kind="needles"),
         CrystalBox((50, 40, 62, 52), area_px=100, score=0.6)]


@pytest.fixture
def well(tmp_path: Path) -> tuple[Index, Path, dict[str, int]]:
    """Well E05 over two inspections: the first scored without a crystal model, the second
    with two crystals."""
    root = tmp_path / "imager"
    before = root / "cplate" / "2026-11-01" / "E05_1.jpg"
    after = root / "cplate" / "2026-11-08" / "E05_1.jpg"
    write_result_for(write_image(before, seed=1), "clear", crystals=0.05)
    add_crystals(write_result_for(write_image(after, seed=2), "crystals", crystals=0.9), BOXES)
    index = Index.open(f"sqlite:///{tmp_path}/index.db")
    sync(index, root, NameReader())
    ids = {row["inspection"]: row["id"] for row in index.history("cplate", "E05")}
    yield index, after, ids
    index.close()


def _client(index: Index) -> TestClient:
    return TestClient(create_app(index, None), base_url="http://127.0.0.1:8765")


def test_image_api_reports_the_crystals_of_the_result_file(
        well: tuple[Index, Path, dict[str, int]]) -> None:
    index, _, ids = well
    api = _client(index)
    got = api.get(f"/api/images/{ids['2026-11-08']}").json()
    assert got["crystals"] == [
        {"box": [10, 12, 30, 20], "area_px": 90, "score": 0.9, "kind": "needles"},
        {"box": [50, 40, 62, 52], "area_px": 100, "score": 0.6}]
    assert got["crystal_count"] == 2 and got["largest_crystal_px"] == 20
    assert got["target"] == [20, 16]  # the larger of the certain ones (0.6 < 0.8 x 0.9)
    assert got["label"] == "crystals"  # the rest of the brief is still there
    assert api.get(f"/api/images/{ids['2026-11-01']}").json()["crystals"] is None


def test_well_view_draws_each_inspections_crystals(
        well: tuple[Index, Path, dict[str, int]]) -> None:
    index, _, ids = well
    page = _client(index).get("/plates/cplate/wells/E05").text
    figures = {int(m.group(1)): m.group(0) for m in re.finditer(
        r'<figure class="inspection" data-image-id="(\d+)">.*?</figure>', page, re.S)}
    with_crystals, without = figures[ids["2026-11-08"]], figures[ids["2026-11-01"]]
    assert re.findall(r'<rect class="crystal-box" x="(\d+)" y="(\d+)" width="(\d+)" '
                      r'height="(\d+)"', with_crystals) == [("10", "12", "20", "8"),
                                                             ("50", "40", "12", "12")]
    assert with_crystals.count('<g class="crystal-target" data-x="20" data-y="16">') == 1
    assert "2 crystals, largest 20 px, target 20, 16</span>" in with_crystals
    assert "crystal" not in without and "<img" in without
    # The latest image, large: the same boxes beside the drop box.
    large = page[page.index('<figure class="image">'):]
    large = large[:large.index("</figure>")]
    assert large.count('class="crystal-box"') == 2 and 'class="drop-box' in large


def test_a_result_that_is_not_of_the_indexed_image_or_not_sound_shows_nothing(
        well: tuple[Index, Path, dict[str, int]]) -> None:
    index, image, ids = well
    api = _client(index)
    url = f"/api/images/{ids['2026-11-08']}"
    result = Path(f"{image}.edgecrystal.json")
    record = json.loads(result.read_text())
    for broken in ({**record, "image": {**record["image"], "sha256": "0" * 64}},  # rescored
                   {**record, "crystals": [{"box": [30, 12, 10, 20], "area_px": 1,
                                            "score": 0.5}]},  # x1 before x0
                   {**record, "crystals": [{"box": [1, 2, 3], "area_px": 1, "score": 0.5}]},
                   {**record, "crystals": "many"}):
        result.write_text(json.dumps(broken))
        assert api.get(url).json()["crystals"] is None, broken
    # A link in the result file's place is not followed.
    elsewhere = result.with_name("elsewhere.json")
    elsewhere.write_text(json.dumps(record))
    result.unlink()
    os.symlink(elsewhere, result)
    assert api.get(url).json()["crystals"] is None
    assert _client(index).get("/plates/cplate/wells/E05").status_code == 200
