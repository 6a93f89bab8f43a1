"""Two processes opening a new SQLite index at once (the daemon's background writer and `ui`, or
two `score --index` runs) must both get it: the schema is brought up to date by one at a time.
Found by the review-loop test: "table alembic_version already exists"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

OPEN = ("import sys; from edgecrystal.index.store import Index; "
        "Index.open(sys.argv[1]).close()")


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_processes_opening_a_new_index_at_once_all_get_it(tmp_path: Path) -> None:
    for attempt in range(3):
        url = f"sqlite:///{tmp_path}/index-{attempt}.db"
        starts = [subprocess.Popen([sys.executable, "-c", OPEN, url], stderr=subprocess.PIPE,
                                   text=True) for _ in range(4)]
        failures = [err for p in starts for err in [p.communicate(timeout=120)[1]]
                    if p.returncode != 0]
        assert not failures, failures[0]
