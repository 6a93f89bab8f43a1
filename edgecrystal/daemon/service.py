"""The daemon's arbiter, shaped like gunicorn's: signal handlers only set flags (signals.py); one
loop on the main thread sleeps until a signal, an event or a deadline, then dispatches to the
parts. The main thread owns the inference backend (a CUDA context belongs to the thread that
made it) and everything the daemon knows (ledger.py): the other threads only queue and wake.

The parts: intake.py finds work (inotify through watcher.py, rescans, the settle rule);
worker.py scores it (batches through the overlapping stages of edgecrystal/stages.py, inference,
results, the index feed, summaries); swap.py answers SIGHUP (a new config and bundle);
health.py speaks to systemd (READY, STATUS, the watchdog).

Order of work per wake-up: signals (stop, reload) -> inotify events -> periodic rescan -> files
that finished arriving -> move the burst along -> summaries -> watchdog ping. The batches in
flight are always finished and written before the daemon stops or opens a new bundle.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..lean_runtime import loaded_forbidden
from .config import Config, load_config
from .health import Health
from .intake import Intake
from .ledger import Ledger
from .lock import RootLocks
from .logs import setup_logging
from .signals import SignalFlags
from .swap import Swap
from .worker import Worker, open_models

if TYPE_CHECKING:
    from ..index.writer import IndexWriter

log = logging.getLogger(__name__)


def run_daemon(config_path: Path | None, overrides: Mapping[str, object], *,
               once: bool = False) -> int:
    cfg = load_config(config_path, dict(overrides))
    setup_logging(cfg.log_level)
    locks = RootLocks(recursive=cfg.recursive)
    locks.acquire(cfg.roots())  # a second daemon on the same, a nested or a parent folder stops
    try:
        daemon = Daemon(cfg, config_path, overrides, locks, once=once)
        try:
            return daemon.run()
        finally:
            daemon.shutdown()
    finally:
        locks.release()


class Daemon:
    def __init__(self, cfg: Config, config_path: Path | None, overrides: Mapping[str, object],
                 locks: RootLocks, *, once: bool = False) -> None:
        self.cfg = cfg
        self.once = once
        self.signals = SignalFlags()
        self.health = Health()
        self.swap = Swap(config_path, overrides, locks, self.health, self.signals.wake)
        self.ledger = Ledger()
        self.intake = Intake(cfg, self.ledger, self.signals.wake)
        self.worker: Worker | None = None  # once the bundle is open
        self.index: IndexWriter | None = None  # when an index is kept (docs/review.md)

    def run(self) -> int:
        worker = self._start()
        while not self.signals.stop:
            if self.once and self.intake.idle:
                log.info("once: nothing left to score, exiting")
                break
            self._sleep(worker)
            if self.signals.stop:
                break
            if self.signals.take_reload():
                self.cfg = self.swap.run(self.cfg, worker, self.intake)
            self.intake.take_events()
            self.intake.rescan_if_due()
            self.intake.collect_ready()
            worker.work(lambda: self.signals.raised)
            worker.flush_summaries()
            self.health.ping()
        worker.drain()  # what is in hand is finished and written before the daemon stops
        return 0

    def _start(self) -> Worker:
        """Signals, the bundle, the index, the watches and the first scan; then READY=1."""
        started = time.monotonic()
        self.signals.install()
        self.health.status("loading the bundle")
        models = open_models(self.cfg, self.health.build_progress, self.signals.wake)
        from ..index.hook import open_writer

        try:
            self.index = open_writer(self.cfg.index, name_patterns=self.cfg.name_patterns,
                                     rock_maker_columns=self.cfg.rock_maker_columns)
        except BaseException:
            models.close()  # no worker owns them yet
            raise
        worker = self.worker = Worker(self.cfg, models, self.ledger, self.intake, self.health,
                                      self.index, once=self.once)
        self.intake.start()
        self.intake.rescan("start")
        selection = models.selection
        log.info("ready backend=%s precision=%s fingerprint=%s watching=%s pending=%d "
                 "heavy_modules=%s pid=%d startup_ms=%.0f", selection.backend,
                 selection.precision, models.pipeline.model.fingerprint,
                 ",".join(self.cfg.watch), self.intake.waiting,
                 ",".join(loaded_forbidden()) or "none", os.getpid(),
                 (time.monotonic() - started) * 1000)
        log.info("backend %s", selection.describe())
        self.health.ready(worker.status())
        return worker

    def _sleep(self, worker: Worker) -> None:
        """Until a signal or a wake-up, or until the first part has something due."""
        due = [t for t in (self.intake.due_in(), worker.due_in(), self.health.due_in())
               if t is not None]
        self.signals.sleep(min(due))

    def shutdown(self) -> None:
        self.health.stopping()
        self.intake.stop()
        if self.worker is not None:
            try:
                self.worker.flush_summaries(force=True)
            except Exception as exc:
                log.warning("summary not written at exit: %s", exc)
            self.worker.close()
        if self.index is not None:
            self.index.close(timeout=10)
        log.info("stopped scored=%d errors=%d", self.ledger.scored, self.ledger.errors)
        self.health.close()
        self.signals.close()
