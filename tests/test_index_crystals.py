"""The crystal fields in the index: the columns migration 0003 adds, filled from real result
files carrying CrystalBox lists (built here: no model), `history`'s crystal growth, and the
index rows' types kept equal to the table."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

from index_helpers import write_image, write_result_for

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.index.history import drop_histories
from edgecrystal.index.rows import HitRow, ImageRow, ImageValues
from edgecrystal.index.schema import images
from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader

DAYS = ["2026-11-01", "2026-11-04", "2026-11-08"]


def _boxes(side: int, n: int = 1) -> list[CrystalBox]:
    """`n` crystals, the first `side` pixels long, the others smaller."""
    return [CrystalBox((10 + 5 * i, 10, 10 + 5 * i + side // (i + 1), 18), area_px=side * 8,
                       score=0.9) for i in range(n)]


def _plate(root: Path) -> None:
    """A01 grows from 12 to 40 px over three inspections; A02 was scored by a bundle without
    a crystal model; A03 has a model that found nothing, then one crystal."""
    for day, (side, count) in zip(DAYS, [(12, 1), (25, 2), (40, 3)], strict=True):
        folder = root / "growplate" / day
        write_result_for(write_image(folder / "A01_1.jpg"), "crystals", crystals=0.9,
                         boxes=_boxes(side, count))
        write_result_for(write_image(folder / "A02_1.jpg", seed=1), "clear", crystals=0.05)
    write_result_for(write_image(root / "growplate" / DAYS[0] / "A03_1.jpg", seed=2), "clear",
                     crystals=0.05, boxes=[])
    write_result_for(write_image(root / "growplate" / DAYS[1] / "A03_1.jpg", seed=2),
                     "crystals", crystals=0.8, boxes=_boxes(9))


def test_rows_carry_crystal_count_and_largest(tmp_path: Path) -> None:
    _plate(tmp_path / "imager")
    with Index.open(f"sqlite:///{tmp_path}/index.db") as index:
        assert sync(index, tmp_path / "imager", NameReader()) == 8
        rows = index.history("growplate")
    by_well: dict[str | None, list[tuple[int | None, int | None]]] = {}
    for row in rows:
        by_well.setdefault(row["well"], []).append(
            (row["crystal_count"], row["largest_crystal_px"]))
    assert by_well == {"A01": [(1, 12), (2, 25), (3, 40)],
                       "A02": [(None, None)] * 3,
                       "A03": [(0, 0), (1, 9)]}


def test_history_reports_crystal_growth(tmp_path: Path) -> None:
    _plate(tmp_path / "imager")
    url = f"sqlite:///{tmp_path}/index.db"
    with Index.open(url) as index:
        sync(index, tmp_path / "imager", NameReader())
        a01, a02, a03 = drop_histories(index.history("growplate"))
    assert [r["largest_crystal_px"] for r in a01.measured] == [12, 25, 40]
    assert a01.growth_px == 28 and a03.growth_px == 9
    assert a02.measured == [] and a02.growth_px is None
    assert a02.as_dict()["crystal_growth"] is None

    growth = json.loads(json.dumps(a01.as_dict()))["crystal_growth"]  # `history --json`
    assert growth["growth_px"] == 28
    assert [(s["inspection"], s["largest_crystal_px"], s["crystal_count"])
            for s in growth["sizes"]] == [(DAYS[0], 12, 1), (DAYS[1], 25, 2), (DAYS[2], 40, 3)]
    text = subprocess.run([sys.executable, "-m", "edgecrystal", "history", "growplate",
                           "--well", "A01", "--index", url],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "largest crystal 40 px" in text.stdout
    assert f"largest crystal 12 -> 40 px (+28 px) from {DAYS[0]}" in text.stdout


def test_migration_0003_keeps_older_rows_and_sync_fills_them(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from edgecrystal.index.store import MIGRATIONS

    url = f"sqlite:///{tmp_path}/index.db"
    old = Index(url)  # an index the previous edgecrystal made: revision 0002, one row
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(sa.text(
            "INSERT INTO images (path, plate, name_layout, name_understood, status, "
            "indexed_at) VALUES ('/old/A01_1.jpg', 'old', 'x', 1, 'ok', '2026-12-01')"))
    old.close()
    _plate(tmp_path / "imager")
    with Index.open(url) as index:
        assert index.revision() == "0003"
        [kept] = index.history("old")
        assert kept["crystal_count"] is None and kept["largest_crystal_px"] is None
        sync(index, tmp_path / "imager", NameReader())
        assert [r["largest_crystal_px"] for r in index.history("growplate", "A01")] \
            == [12, 25, 40]


def test_row_types_name_the_tables_columns() -> None:
    """ImageValues/ImageRow are the images table's columns (the read side casts to them)."""
    columns = {c.name for c in images.columns}
    person = {"id", "human_label", "human_by", "human_at"}
    assert set(typing.get_type_hints(ImageValues)) == columns - person
    assert set(typing.get_type_hints(ImageRow)) == columns | {"scores"}
    assert set(typing.get_type_hints(HitRow)) == columns | {"scores", "hit_score"}


def test_review_api_carries_the_crystal_fields(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from edgecrystal.ui.app import create_app

    _plate(tmp_path / "imager")
    with Index.open(f"sqlite:///{tmp_path}/index.db") as index:
        sync(index, tmp_path / "imager", NameReader())
        api = TestClient(create_app(index, None), base_url="http://127.0.0.1:8765")
        wells = {w["well"]: w for w in api.get("/api/plates/growplate").json()["wells"]}
        drops = api.get("/api/plates/growplate/history", params={"well": "A01"}).json()["drops"]
    assert (wells["A01"]["crystal_count"], wells["A01"]["largest_crystal_px"]) == (3, 40)
    assert (wells["A02"]["crystal_count"], wells["A02"]["largest_crystal_px"]) == (None, None)
    assert drops[0]["crystal_growth"]["growth_px"] == 28
