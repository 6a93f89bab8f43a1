"""The index on a real PostgreSQL server (Debian's, started by the test in a temporary folder as
a non-root user): the same upserts and history as SQLite, and a server that goes away in the
middle of a run loses no result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from index_helpers import (
    PostgresServer,
    plate_over_time,
    wait_until,
    write_image,
    write_result_for,
)

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.index.history import drop_histories
from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.index.writer import IndexWriter
from edgecrystal.naming import NameReader


def test_postgres_index_upserts_and_history(postgres: PostgresServer, tmp_path: Path) -> None:
    root = tmp_path / "imager"
    plate_over_time(root, "pgplate", ["2026-11-01", "2026-11-04"],
                    {"A01": ["clear", "crystals"], "D06": ["other", "other"]})
    with Index.open(postgres.url) as index:
        assert index.revision() == "0003"
        assert sync(index, root, NameReader()) == 4
        assert sync(index, root, NameReader()) == 4
        rows = index.history("pgplate")
        assert len(rows) == 4
        [a01, _] = drop_histories(rows)
        assert a01.first_crystals is not None
        assert a01.first_crystals["inspection"] == "2026-11-04"
        wells = {r["well"]: r for r in index.plate_wells("pgplate")}
        index.set_human_label(wells["D06"]["id"], "precipitate", "ana")
        assert index.image(wells["D06"]["id"])["human_label"] == "precipitate"
        assert index.image(wells["D06"]["id"])["human_at"].tzinfo is not None
        # The crystal columns (migration 0003) on the server as on SQLite.
        boxes = [CrystalBox((4, 4, 30, 12), area_px=120, score=0.9),
                 CrystalBox((40, 20, 50, 60), area_px=200, score=0.85)]
        write_result_for(write_image(root / "pgplate" / "2026-11-04" / "B02_1.jpg"),
                         "crystals", crystals=0.9, boxes=boxes)
        sync(index, root, NameReader())
        [b02] = index.history("pgplate", "B02")
        assert (b02["crystal_count"], b02["largest_crystal_px"]) == (2, 40)
        assert (wells["A01"]["crystal_count"], wells["A01"]["largest_crystal_px"]) \
            == (None, None)


def test_a_database_that_goes_away_loses_no_result(postgres: PostgresServer,
                                                   tmp_path: Path) -> None:
    """Results keep being written while the server is down; the writer catches up when it is
    back, and what is still missing at exit comes in with `edgecrystal index sync`."""
    plate = tmp_path / "imager" / "outage"

    def score(wells: range) -> list[Path]:
        return [write_result_for(write_image(plate / f"A{n:02d}_1.jpg", seed=n), "clear")
                for n in wells]

    writer = IndexWriter(postgres.url, retry_s=0.2, max_retry_s=0.5)
    with Index.open(postgres.url) as index:
        def indexed() -> int:
            return len(index.history("outage"))

        for result in score(range(1, 5)):
            writer.add(result)
        assert wait_until(lambda: writer.pending == 0)
        assert indexed() == 4

        postgres.stop("immediate")  # the server dies mid-run
        for result in score(range(5, 9)):
            writer.add(result)  # never blocks, never raises
        assert all((plate / f"A{n:02d}_1.jpg.edgecrystal.json").is_file() for n in range(1, 9))
        assert writer.pending == 4

        postgres.start()
        assert wait_until(lambda: writer.pending == 0, timeout=60)
        index.engine.dispose()
        assert indexed() == 8

        postgres.stop("immediate")  # down again, and still down when the run ends
        for result in score(range(9, 13)):
            writer.add(result)
        assert writer.close(timeout=2) == 4
        postgres.start()
        index.engine.dispose()
        assert indexed() == 8
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "index", "sync", str(plate),
                           "--index", postgres.url], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with Index.open(postgres.url) as index:
        assert sorted(r["well"] for r in index.history("outage")) == [
            f"A{n:02d}" for n in range(1, 13)]
