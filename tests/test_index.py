"""The results index on SQLite: migrations, idempotent upserts, people's labels, drop history,
sync from result files, the export for retraining, and the commands."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from index_helpers import plate_over_time, wait_until, write_image, write_result_for

from edgecrystal.dataset import load_dataset
from edgecrystal.index.history import drop_histories
from edgecrystal.index.store import Index, UnknownPlate
from edgecrystal.index.sync import sync
from edgecrystal.index.writer import IndexWriter
from edgecrystal.naming import NameReader

DAYS = ["2026-11-01", "2026-11-03", "2026-11-07", "2026-11-14"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def plates(tmp_path: Path) -> Path:
    root = tmp_path / "imager"
    plate_over_time(root, "plateA", DAYS, {
        "A01": ["clear", "clear", "crystals", "crystals"],
        "B02": ["clear", "precipitate", "precipitate", "precipitate"],
        "H12": ["clear", "clear", "clear", "clear"],
    })
    return root


def test_migrations_match_the_schema_and_run_once(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from edgecrystal.index.schema import metadata

    url = f"sqlite:///{tmp_path}/index.db"
    with Index.open(url) as index:
        assert index.revision() == "0003"
        with index.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    with Index.open(url) as again:  # a second open finds the schema current
        assert again.revision() == "0003" and again.count() == 0


def test_sync_is_idempotent_and_keeps_a_persons_label(plates: Path, tmp_path: Path) -> None:
    reader = NameReader()
    with Index.open(f"sqlite:///{tmp_path}/index.db") as index:
        assert sync(index, plates, reader) == 12
        assert sync(index, plates, reader) == 12
        assert index.count() == 12
        latest = {r["well"]: r for r in index.plate_wells("plateA")}
        assert {w: r["label"] for w, r in latest.items()} == {
            "A01": "crystals", "B02": "precipitate", "H12": "clear"}
        h12 = latest["H12"]
        index.set_human_label(h12["id"], "other", "ana")

        # Re-scored with another result: the row is updated, the person's label stays.
        image = Path(h12["path"])
        write_result_for(image, "precipitate")
        sync(index, plates, reader)
        row = index.image(h12["id"])
        assert row is not None and index.count() == 12
        assert (row["label"], row["human_label"], row["human_by"]) == ("precipitate", "other",
                                                                       "ana")
        # New bytes under the same name are another picture: the person's label goes.
        write_image(image, seed=99)
        write_result_for(image, "clear")
        sync(index, plates, reader)
        row = index.image(h12["id"])
        assert row is not None and row["human_label"] is None and row["label"] == "clear"


def test_history_first_crystals_and_changes(plates: Path, tmp_path: Path) -> None:
    with Index.open(f"sqlite:///{tmp_path}/index.db") as index:
        sync(index, plates, NameReader())
        [a01] = drop_histories(index.history("plateA", "A01"))
        assert [r["inspection"] for r in a01.inspections] == DAYS
        assert a01.first_crystals is not None
        assert a01.first_crystals["inspection"] == "2026-11-07"
        assert [(b["label"], a["inspection"]) for b, a in a01.changes] == [
            ("clear", "2026-11-07")]
        assert len(drop_histories(index.history("plateA"))) == 3
        with pytest.raises(UnknownPlate):
            index.history("plateZ")


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_history_and_sync_commands(plates: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    done = cli("index", "sync", str(plates), "--index", url)
    assert done.returncode == 0, done.stderr
    assert "12 result(s)" in done.stdout
    done = cli("history", "plateA", "--well", "A01", "--index", url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "A01 drop 1: crystals since inspection 2026-11-07 (2026-11-07 00:00)"
    assert "changed clear -> crystals at 2026-11-07" in done.stdout
    done = cli("history", "no-such-plate", "--index", url)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"edgecrystal: error: unknown plate 'no-such-plate' in "
                                   f"index {url}")


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_export_labels_is_a_training_folder(plates: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/index.db"
    with Index.open(url) as index:
        sync(index, plates, NameReader())
        wells = {r["well"]: r for r in index.plate_wells("plateA")}
        index.set_human_label(wells["B02"]["id"], "crystals", "ana")
        index.set_human_label(wells["H12"]["id"], "other", "ben")
    out = tmp_path / "corrected"
    done = cli("index", "export-labels", str(out), "--index", url)
    assert done.returncode == 0, done.stderr
    data = load_dataset(out)
    assert sorted(r.label for r in data.records) == ["crystals", "other"]
    assert all(r.image.is_file() and r.image.read_bytes() ==
               Path(wells[r.meta["well"]]["path"]).read_bytes() for r in data.records)
    with open(out / "labels.csv", newline="") as handle:
        assert {row["labelled_by"] for row in csv.DictReader(handle)} == {"ana", "ben"}
    again = cli("index", "export-labels", str(out), "--index", url)
    assert again.returncode == 2 and "not an empty folder" in again.stderr


def test_writer_feeds_the_index_in_the_background(plates: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/index.db"
    writer = IndexWriter(url)
    results = sorted(plates.rglob("*.edgecrystal.json"))
    for result in results:
        writer.add(result)
    assert writer.close(timeout=60) == 0
    with Index.open(url) as index:
        assert index.count() == len(results)
        assert wait_until(lambda: index.plates()[0]["crystal_wells"] == 1)


def test_the_index_needs_its_extra_says_so_in_one_line(tmp_path: Path) -> None:
    # A Python that cannot find SQLAlchemy: the lean runtime install.
    code = ("import sys, importlib.util as u\n"
            "orig = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'sqlalchemy' else orig(n, *a)\n"
            "from edgecrystal.cli import main\n"
            "main(['history', 'p1', '--index', 'sqlite:///x.db'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("edgecrystal: error: this needs the `index` extra "
                                   "(sqlalchemy missing): pip install 'edgecrystal[index]'")
