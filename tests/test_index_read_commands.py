"""The index's read-only commands (history, ui, index export-labels) on a mistyped --index, a
well written A1, and a plate name in the wrong case (issue 23, item 16)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from index_helpers import plate_over_time

pytest.importorskip("sqlalchemy")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("imager")
    plate_over_time(root, "CI022987", ["2026-11-01", "2026-11-03"],
                    {"A01": ["clear", "crystals"], "H12": ["clear", "clear"]})
    url = f"sqlite:///{root}/index.db"
    done = cli("index", "sync", str(root), "--index", url)
    assert done.returncode == 0, done.stderr
    return url


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.mark.parametrize("command", [["history", "CI022987"], ["ui", "--port", "FREE"],
                                     ["index", "export-labels", "OUT"]])
def test_read_only_commands_refuse_a_database_that_is_not_there(tmp_path: Path,
                                                                command: list[str]) -> None:
    mistyped = tmp_path / "reslts.db"
    args = [str(tmp_path / "out") if a == "OUT" else free_port() if a == "FREE" else a
            for a in command]
    done = cli(*args, "--index", f"sqlite:///{mistyped}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"edgecrystal: error: index {mistyped} does not exist (check --index; "
        "`edgecrystal index sync ROOT --index ...` builds one)"]
    assert not mistyped.exists()


def test_unknown_plate_names_the_index_and_hints_at_the_case(index_url: str) -> None:
    database = index_url.removeprefix("sqlite:///")
    done = cli("history", "ci022987", "--index", index_url)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"edgecrystal: error: unknown plate 'ci022987' in index "
                                   f"sqlite:///{database} (plate names are matched as the "
                                   "imager wrote them: did you mean 'CI022987'?)")
    done = cli("history", "NOPE", "--index", index_url)
    assert done.stderr.strip() == (f"edgecrystal: error: unknown plate 'NOPE' in index "
                                   f"sqlite:///{database}")


def test_a_well_written_without_its_zero_is_the_same_well(index_url: str) -> None:
    short = cli("history", "CI022987", "--well", "a1", "--index", index_url)
    padded = cli("history", "CI022987", "--well", "A01", "--index", index_url)
    assert short.returncode == 0, short.stderr
    assert short.stdout == padded.stdout and short.stdout.startswith("A01 drop 1: crystals")
    bad = cli("history", "CI022987", "--well", "Q99x", "--index", index_url)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("edgecrystal: error: --well Q99x is not a well")


def test_ui_on_a_busy_port_is_one_line(index_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("ui", "--index", index_url, "--port", str(port))
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"edgecrystal: error: port {port} on 127.0.0.1 is in use (choose --port)"
