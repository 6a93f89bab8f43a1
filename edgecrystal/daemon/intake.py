"""Finding work: inotify events (watcher.Watcher) and rescans feed the settle rule
(watcher.Pending); files that finished arriving join the ledger's ready queue. Everything here
runs on the main thread; the observer thread only queues events and wakes the loop."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..discovery import scan
from .config import Config
from .ledger import Ledger
from .logs import quoted
from .watcher import Filter, Pending, Watcher

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, cfg: Config, ledger: Ledger, wake: Callable[[], None]) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.wake = wake
        self.pending = Pending(cfg.settle_ms / 1000, cfg.trust_close_write)
        self.filter = Filter(cfg.roots(), cfg.extensions)
        self.watcher: Watcher | None = None
        self.next_rescan = 0.0

    # ------------------------------------------------------------------ watching
    def start(self) -> None:
        self.watcher = Watcher(self.cfg.roots(), self.cfg.recursive, self.wake)
        for problem in self.watcher.failed:
            log.warning("inotify unavailable for %s; relying on rescans", problem)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def retarget(self, cfg: Config) -> None:
        """A reloaded config: new filter and settle rule; new watches when the roots changed."""
        roots_changed = (cfg.watch, cfg.recursive) != (self.cfg.watch, self.cfg.recursive)
        self.cfg = cfg
        self.filter = Filter(cfg.roots(), cfg.extensions)
        self.pending.settle = cfg.settle_ms / 1000
        self.pending.trust_close = cfg.trust_close_write
        if roots_changed and self.watcher is not None:
            self.watcher.stop()
            self.start()

    # ------------------------------------------------------------------ what the loop asks
    @property
    def waiting(self) -> int:
        """Files seen and not yet handed to the stages."""
        return len(self.pending) + len(self.ledger.ready)

    @property
    def idle(self) -> bool:
        """Nothing seen is left unscored (`serve --once` exits then)."""
        return not (self.pending.entries or self.ledger.ready or self.ledger.in_flight)

    def due_in(self) -> float:
        """Seconds until the next rescan, or until a pending file may have settled."""
        wait = max(0.0, self.next_rescan - time.monotonic())
        due = self.pending.next_due()
        return wait if due is None else min(wait, due + 0.01)

    # ------------------------------------------------------------------ finding work
    def rescan(self, why: str) -> None:
        t = time.monotonic()
        n = 0
        # At start, what a killed daemon was writing when it died is debris in these folders.
        debris_in: set[Path] | None = set(self.cfg.roots()) if why == "start" else None
        for path in scan(self.cfg.roots(), self.cfg.recursive, self.filter.wanted_name):
            if debris_in is not None:
                debris_in.add(path.parent)
            if self.consider(path, closed=False):
                n += 1
        if debris_in is not None:
            from ..results import remove_stale_temporaries

            for folder in debris_in:
                remove_stale_temporaries(folder)
        self.next_rescan = time.monotonic() + self.cfg.rescan_interval_s
        if n or why != "periodic":
            log.info("scan reason=%s new=%d ms=%.0f", why, n, (time.monotonic() - t) * 1000)

    def rescan_if_due(self) -> None:
        if time.monotonic() >= self.next_rescan:
            self.rescan("periodic")

    def take_events(self) -> None:
        if self.watcher is None:
            return
        for path, closed in self.watcher.drain():
            if path.is_dir() and not path.is_symlink():
                # A folder created or moved in may already hold images.
                if self.cfg.recursive:
                    for p in scan([path], True, self.filter.wanted_name):
                        self.consider(p, closed=True)
                continue
            if self.filter.wanted_name(path):
                self.consider(path, closed=closed)

    def consider(self, path: Path, *, closed: bool) -> bool:
        """Queue `path` unless it is done, skipped or already queued; True when queued."""
        book = self.ledger
        if path in book.queued or path in book.in_flight:
            return False
        if not os.path.lexists(path):  # deleted: forget it (a long-running daemon stays flat)
            book.done.pop(path, None)
            return False
        reason = self.filter.check(path)
        if reason is not None:
            if (path, reason) not in book.skipped:  # one log line per file and reason
                book.skipped.add((path, reason))
                book.skips += 1
                log.warning("skip path=%s reason=%s", quoted(path), reason)
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        if book.done.get(path) == (st.st_size, st.st_mtime_ns):
            return False
        if self.cfg.ignore_older_than_days and \
                time.time() - st.st_mtime > self.cfg.ignore_older_than_days * 86400:
            return False
        from ..results import is_done

        if path not in self.pending.entries and is_done(path, book.fingerprint, st):
            book.done[path] = (st.st_size, st.st_mtime_ns)
            return False
        # A rescan finds files that inotify already reported, or that sat there while the
        # daemon was down: the settle rule still applies (they may be mid-copy).
        self.pending.touch(path, closed=closed)
        return True

    def wait_again(self, path: Path, *, not_before: float = 0.0) -> None:
        """Back to the settle rule: a file still arriving, or a retry after `not_before`."""
        self.pending.touch(path, not_before=not_before)

    def collect_ready(self) -> None:
        ready, gone = self.pending.take_ready()
        now = time.monotonic()
        for path in ready:
            if path not in self.ledger.queued:
                self.ledger.queued.add(path)
                self.ledger.ready.append((path, now))
        for path in gone:
            log.info("vanished path=%s (deleted before scoring)", quoted(path))
