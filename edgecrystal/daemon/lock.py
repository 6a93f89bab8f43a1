"""One daemon per watched folder tree: an flock'ed `.edgecrystal.lock` in each root, holding the
owner's pid. A second `edgecrystal serve` on the same root, on a folder below it, or (recursive)
on a folder above it refuses in one line naming that pid instead of scoring every image a second
time. The kernel drops the lock when the process dies (kill -9 included), so a stale file never
blocks a restart.

Overlap is checked after this daemon holds its own locks, so two daemons starting together on
nested folders cannot both miss each other (at worst both refuse). The pid is a courtesy for the
message: on a full disk it cannot be written, and the lock holds all the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import UsageError

log = logging.getLogger(__name__)

# Dot-named and carrying ".edgecrystal.": never taken for an input image.
LOCK_NAME = ".edgecrystal.lock"
TOP_ONLY = "top-only"  # written after the pid by a daemon that does not look below its roots


class RootLocks:
    """The locks this daemon holds, one per watched root. `recursive`: the daemon scores the
    folders below its roots too, so no other daemon may watch one of them."""

    def __init__(self, recursive: bool = True) -> None:
        self.held: dict[Path, int] = {}
        self.recursive = recursive

    def acquire(self, roots: list[Path]) -> None:
        """Lock every root not yet held; UsageError (and nothing newly held) when another
        process holds one."""
        taken: list[Path] = []
        try:
            for root in roots:
                root = root.resolve()
                if root in self.held:
                    continue
                fd = _lock(root, self.recursive)
                if fd is not None:
                    self.held[root] = fd
                    taken.append(root)
            for root in taken:
                self._refuse_overlap(root)
        except BaseException:
            for root in taken:
                _unlock(self.held.pop(root))
            raise

    def retarget(self, roots: list[Path], recursive: bool | None = None) -> None:
        """Hold exactly `roots` (after a reload changed them); the old set stays on failure."""
        wanted = {r.resolve() for r in roots}
        if recursive is not None and recursive != self.recursive:
            self.recursive = recursive
            for fd in self.held.values():
                _write_owner(fd, recursive)
        self.acquire(sorted(wanted))
        for root in [r for r in self.held if r not in wanted]:
            _unlock(self.held.pop(root))

    def release(self) -> None:
        for fd in self.held.values():
            _unlock(fd)
        self.held.clear()


    def _refuse_overlap(self, root: Path) -> None:
        """UsageError when another live daemon watches a folder above `root` (recursively) or,
        when this daemon is recursive, a folder below it."""
        for above in root.parents:
            if above not in self.held:
                _refuse_if_held(above / LOCK_NAME, root, below_only=False)
        if self.recursive:
            for folder in _folders_below(root):
                if folder not in self.held:
                    _refuse_if_held(folder / LOCK_NAME, root, below_only=True)


def _folders_below(root: Path) -> Iterator[Path]:
    """Every folder below `root` the daemon would look into (discovery.scan's walk: dot folders
    and linked folders are not entered)."""
    for folder, dirs, _ in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if folder != str(root):
            yield Path(folder)


def _refuse_if_held(lock_file: Path, root: Path, below_only: bool) -> None:
    """Probe another folder's lock with a shared, non-blocking flock: it fails only while a
    daemon holds it. A lock above `root` left by a top-only daemon covers none of root's files."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # none there (or unreadable: nothing to go by)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return  # nobody holds it: a file left by a daemon that has stopped
    except BlockingIOError:
        owner, _, how = os.pread(fd, 64, 0).decode("ascii", "replace").strip().partition(" ")
    finally:
        os.close(fd)
    if not below_only and how == TOP_ONLY:
        return
    where = lock_file.parent
    relation = "a folder inside it" if below_only else "which holds it"
    raise UsageError(f"another edgecrystal serve (pid {owner or '?'}) already watches {where} "
                     f"({relation}; lock {lock_file}): {root} would be scored twice; stop it or "
                     "watch folders that do not nest") from None


def _lock(root: Path, recursive: bool = True) -> int | None:
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        # A read-only or missing root: nothing can be written there by anyone, us included.
        log.warning("no lock in %s (%s): a second daemon on it would not be refused", root,
                    exc.strerror or exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 64, 0).decode("ascii", "replace").split(" ")[0].strip() or "?"
        os.close(fd)
        raise UsageError(f"another edgecrystal serve (pid {owner}) already watches {root} "
                         f"(lock {path}); stop it first") from None
    _write_owner(fd, recursive)
    return fd


def _write_owner(fd: int, recursive: bool) -> None:
    """The pid (and whether the daemon looks below its roots) for others' messages. On a full
    disk this write fails: the flock is what locks, so the daemon starts without it."""
    text = f"{os.getpid()}{'' if recursive else ' ' + TOP_ONLY}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError as exc:
        log.warning("lock held, but its pid could not be written (%s): another daemon on these "
                    "folders is still refused, without this pid", exc.strerror or exc)


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing the descriptor releases the flock
