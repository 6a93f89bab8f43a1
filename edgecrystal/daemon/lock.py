"""One daemon per watched folder: an flock'ed `.edgecrystal.lock` in each root, holding the
owner's pid. A second `edgecrystal serve` on the same root refuses in one line naming that pid
instead of scoring every image a second time. The kernel drops the lock when the process dies
(kill -9 included), so a stale file never blocks a restart."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from ..errors import UsageError

log = logging.getLogger(__name__)

# Dot-named and carrying ".edgecrystal.": never taken for an input image.
LOCK_NAME = ".edgecrystal.lock"


class RootLocks:
    """The locks this daemon holds, one per watched root."""

    def __init__(self) -> None:
        self.held: dict[Path, int] = {}

    def acquire(self, roots: list[Path]) -> None:
        """Lock every root not yet held; UsageError (and nothing newly held) when another
        process holds one."""
        taken: list[Path] = []
        try:
            for root in roots:
                root = root.resolve()
                if root in self.held:
                    continue
                fd = _lock(root)
                if fd is not None:
                    self.held[root] = fd
                    taken.append(root)
        except BaseException:
            for root in taken:
                _unlock(self.held.pop(root))
            raise

    def retarget(self, roots: list[Path]) -> None:
        """Hold exactly `roots` (after a reload changed them); the old set stays on failure."""
        wanted = {r.resolve() for r in roots}
        self.acquire(sorted(wanted))
        for root in [r for r in self.held if r not in wanted]:
            _unlock(self.held.pop(root))

    def release(self) -> None:
        for fd in self.held.values():
            _unlock(fd)
        self.held.clear()


def _lock(root: Path) -> int | None:
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
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"another edgecrystal serve (pid {owner}) already watches {root} "
                         f"(lock {path}); stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing the descriptor releases the flock
