"""SIGHUP: read the config again and score with it (and its bundle) from the next batch. The
batches in flight are finished by the bundle they were read for first; a bad config, roots that
another daemon holds or a bundle that does not open keep the old config and bundle (one log
line), and the daemon goes on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import EdgeCrystalError
from .config import Config, load_config
from .health import Health
from .intake import Intake
from .lock import RootLocks
from .logs import setup_logging
from .worker import Worker, open_models

log = logging.getLogger(__name__)


class Swap:
    def __init__(self, config_path: Path | None, overrides: Mapping[str, object],
                 locks: RootLocks, health: Health, wake: Callable[[], None]) -> None:
        self.config_path = config_path
        self.overrides = dict(overrides)
        self.locks = locks
        self.health = health
        self.wake = wake

    def run(self, cfg: Config, worker: Worker, intake: Intake) -> Config:
        """The config in force afterwards: the new one, or `cfg` when the swap failed."""
        self.health.reloading()
        log.info("reload requested (SIGHUP)")
        new = self._read(cfg)
        if new is not None:
            worker.drain()  # batches in flight are scored by the bundle they were read for
            try:
                models = open_models(new, self.health.build_progress, self.wake)
            except EdgeCrystalError as exc:
                log.error("reload: cannot open the bundle, keeping the old one: %s", exc)
                if _roots_changed(cfg, new):
                    self.locks.retarget(cfg.roots(), cfg.recursive)  # held before: free again
                new = None
            else:
                setup_logging(new.log_level)
                worker.swap(new, models)
                intake.retarget(new)
                selection = models.selection
                log.info("reloaded config=%s backend=%s precision=%s fingerprint=%s",
                         new.source, selection.backend, selection.precision,
                         models.pipeline.model.fingerprint)
                intake.rescan("reload")
        self.health.ready(worker.status())
        return cfg if new is None else new

    def _read(self, cfg: Config) -> Config | None:
        """The new config with the locks moved to its roots, or None (logged)."""
        try:
            new = load_config(self.config_path, self.overrides)
        except EdgeCrystalError as exc:
            log.error("reload: bad config, keeping the old one: %s", exc)
            return None
        if _roots_changed(cfg, new):
            try:
                self.locks.retarget(new.roots(), new.recursive)
            except EdgeCrystalError as exc:
                log.error("reload: keeping the old config: %s", exc)
                return None
        return new


def _roots_changed(old: Config, new: Config) -> bool:
    return (new.watch, new.recursive) != (old.watch, old.recursive)
