"""One daemon per folder tree: the root lock also covers the folders below a watched root and
the folders above it (issue 23: a second daemon on a subfolder re-scored 122 images and
overwrote the first one's results), and a lock whose pid cannot be written (a full disk) still
locks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import ServeProcess, write_config

from edgecrystal.daemon.lock import RootLocks
from edgecrystal.errors import UsageError


def test_nested_and_parent_roots_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "imager"
    (root / "plate1" / "day3").mkdir(parents=True)
    (root / ".hidden").mkdir()
    first = RootLocks()
    first.acquire([root])
    try:
        for other in (root / "plate1", root / "plate1" / "day3", tmp_path):
            second = RootLocks()
            with pytest.raises(UsageError) as refused:
                second.acquire([other])
            line = str(refused.value)
            assert "\n" not in line and "already watches" in line and str(root) in line, line
            assert second.held == {}
        # A folder beside it is another tree: fine.
        beside = tmp_path / "other-imager"
        beside.mkdir()
        third = RootLocks()
        third.acquire([beside])
        third.release()
        # One daemon may watch a root and a folder inside it (its own locks do not clash).
        both = RootLocks()
        first.release()
        both.acquire([root, root / "plate1"])
        assert set(both.held) == {root.resolve(), (root / "plate1").resolve()}
        both.release()
    finally:
        first.release()
    # The locks go with their holder: the subfolder is free now.
    after = RootLocks()
    after.acquire([root / "plate1"])
    after.release()


def test_a_top_only_daemon_leaves_its_subfolders_free(tmp_path: Path) -> None:
    root = tmp_path / "imager"
    (root / "plate1").mkdir(parents=True)
    top_only = RootLocks(recursive=False)
    top_only.acquire([root])
    try:
        below = RootLocks()
        below.acquire([root / "plate1"])  # the top-only daemon never looks in there
        below.release()
        above = RootLocks()
        with pytest.raises(UsageError):  # but a recursive one above would score its files
            above.acquire([tmp_path])
    finally:
        top_only.release()


def test_a_second_serve_on_a_subfolder_refuses_in_one_line(fast_bundle: Path,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "imager"
    (root / "plate1").mkdir(parents=True)
    first = ServeProcess(tmp_path, write_config(tmp_path / "first.toml", fast_bundle, root,
                                                index="off"))
    try:
        for name, watch in (("sub", root / "plate1"), ("parent", tmp_path)):
            cfg = write_config(tmp_path / f"{name}.toml", fast_bundle, watch, index="off")
            second = subprocess.run([sys.executable, "-m", "edgecrystal", "serve", "--config",
                                     str(cfg)], capture_output=True, text=True, timeout=60)
            assert second.returncode == 2, second.stderr
            last = second.stderr.strip().splitlines()[-1]
            assert last.startswith("edgecrystal: error: another edgecrystal serve"), last
            assert f"(pid {first.proc.pid})" in last and str(root) in last
            assert "Traceback" not in second.stderr
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0


def test_a_full_disk_still_locks(tmp_path: Path) -> None:
    """The pid cannot be written into the lock file on a full file system: the lock holds all
    the same (the flock is the lock), and a second daemon is refused without the pid."""
    from test_daemon_overlap import fill, small_tmpfs

    with small_tmpfs("1m") as root:
        filler = fill(root)
        first = RootLocks()
        first.acquire([root])  # raised OSError (No space left on device) before
        try:
            with pytest.raises(UsageError, match=r"\(pid \?\) already watches"):
                RootLocks().acquire([root])
        finally:
            first.release()
            filler.unlink()
