"""The review page's crystals-first pieces over a real SQLite index (Starlette's test client on
the real app): the hit list by crystals_hit, the uncertain-first queue and its next-drop
redirect, drop thumbnails, the plate view's marks and the well view's inspections side by side."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from index_helpers import plate_over_time, write_image, write_result_for
from starlette.testclient import TestClient

from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader
from edgecrystal.ui.app import create_app

TOKEN = "queue-token"


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Index, Path]:
    root = tmp_path / "imager"
    plate_over_time(root, "plateQ", ["2026-11-01", "2026-11-07"],
                    {"A01": ["clear", "crystals"], "C05": ["precipitate", "precipitate"]})
    day = root / "plateQ" / "2026-11-07"
    # Two drops of one well: both uncertain, the second over the crystals threshold although
    # its label is precipitate.
    write_result_for(write_image(day / "D04_1.jpg", seed=4, size=(160, 120)), "clear",
                     crystals=0.45)
    write_result_for(write_image(day / "D04_2.jpg", seed=5), "precipitate", crystals=0.4,
                     crystals_hit=True)
    index = Index.open(f"sqlite:///{tmp_path}/index.db")
    sync(index, root, NameReader())
    yield index, root
    index.close()


def client(index: Index) -> TestClient:
    return TestClient(create_app(index, TOKEN), base_url="http://127.0.0.1:8765")


def _ids(index: Index) -> dict[str, int]:
    return {Path(r["path"]).name + "@" + (r["inspection"] or ""): r["id"]
            for r in index.history("plateQ")}


def test_hit_list_follows_crystals_hit_unless_a_score_is_asked(
        indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    by_hit = api.get("/api/hits").json()
    assert by_hit["by"] == "crystals_hit"
    assert sorted((h["well"], h["drop_number"]) for h in by_hit["hits"]) == [("A01", 1),
                                                                             ("D04", 2)]
    by_score = api.get("/api/hits", params={"class": "crystals", "min_score": 0.5}).json()
    assert [h["well"] for h in by_score["hits"]] == ["A01"]
    page = api.get("/hits")
    assert page.status_code == 200 and 'id="hits-mode"' in page.text
    assert page.text.count('class="mark hit"') == 2
    assert api.get("/hits", params={"class": "crystals", "min_score": ""}).status_code == 200


def test_queue_is_uncertain_first_and_next_skips_what_was_seen(
        indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    queue = api.get("/api/queue").json()["queue"]
    assert [(q["well"], q["drop_number"]) for q in queue] == [("D04", 1), ("D04", 2)]
    assert all(q["uncertain"] for q in queue)
    first = api.get("/queue/next", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == \
        f"/images/{queue[0]['id']}?queue=1"
    after = api.get("/queue/next", params={"after": queue[0]["id"]}, follow_redirects=False)
    assert after.headers["location"] == f"/images/{queue[1]['id']}?queue=1"
    page = api.get(f"/images/{queue[0]['id']}")
    assert f'data-current-image="{queue[0]["id"]}"' in page.text
    assert f'href="/queue/next?after={queue[0]["id"]}"' in page.text
    # Labelled by a person: out of the queue; an empty queue sends the page back to /queue.
    for item in queue:
        done = api.post(f"/api/images/{item['id']}/label", json={"label": "clear"},
                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert done.status_code == 200
    assert api.get("/api/queue").json()["queue"] == []
    assert api.get("/queue/next", follow_redirects=False).headers["location"] == "/queue"
    assert 'id="queue-empty"' in api.get("/queue").text


def test_drop_thumbnail_is_the_drop_from_the_image(indexed: tuple[Index, Path]) -> None:
    index, root = indexed
    api = client(index)
    row = next(r for r in index.history("plateQ", "D04") if r["drop_number"] == 1)
    reply = api.get(f"/images/{row['id']}/thumb")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    thumb = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    # The box (a sixth in from each side of 160x120) plus a 10 % margin, long side <= 128.
    box_w = row["box_x1"] - row["box_x0"]
    box_h = row["box_y1"] - row["box_y0"]
    assert max(thumb.shape[:2]) <= 128
    assert abs(thumb.shape[1] / thumb.shape[0] - box_w / box_h) < 0.05
    assert api.get("/images/999999/thumb").status_code == 404
    # A link swapped in for the image is never followed (one open, as for the image itself).
    image = root / "plateQ" / "2026-11-07" / "D04_1.jpg"
    elsewhere = root.parent / "elsewhere.jpg"
    image.rename(elsewhere)
    image.symlink_to(elsewhere)
    assert api.get(f"/images/{row['id']}/thumb").status_code == 404
    image.unlink()
    assert api.get(f"/images/{row['id']}/thumb").status_code == 404


def test_plate_view_has_a_marked_thumbnail_per_drop_and_well_view_every_inspection(
        indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    page = api.get("/plates/plateQ").text
    d04 = page.split('data-well="D04"', 1)[1].split("</td>", 1)[0]
    assert d04.count('class="drop-thumb') == 2
    assert "uncertain" in d04 and " hit" in d04 and "/thumb" in d04
    well = api.get("/plates/plateQ/wells/A01").text
    timeline = well.split('class="timeline"', 1)[1].split("</div>", 1)[0]
    assert timeline.count('class="inspection"') == 2
    assert timeline.index("2026-11-01") < timeline.index("2026-11-07")
