"""The daemon's main loop, shaped like a good arbiter (gunicorn): signal handlers only set flags
(and Python's wakeup fd writes to the self-pipe); the loop sleeps in select() on that pipe and
does the bookkeeping and inference on the main thread, which owns the inference backend
(a CUDA context belongs to the thread that made it).

Order of work per wake-up: signals (stop, reload) -> inotify events -> periodic rescan -> files
that finished arriving -> move the burst along (edgecrystal/stages.py: a reader thread decodes
the next batch, the main thread infers, a writer thread writes the last; the stage threads wake
the loop through the same self-pipe) -> summaries -> watchdog ping. Everything the daemon knows
(done, counts, retries) changes on the main thread only. The batches in flight are always
finished and written before the daemon stops or opens a new bundle.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..discovery import scan
from ..errors import EdgeCrystalError, one_line
from ..stages import Decoded, StageRunner, Written
from .config import Config, load_config
from .lock import RootLocks
from .sdnotify import Notifier, watchdog_interval
from .watcher import Filter, Pending, Watcher, open_for_writing

if TYPE_CHECKING:  # loaded inside the daemon's start, after the config is checked
    from ..pipeline import Loaded, ModelInfo, Scored

log = logging.getLogger(__name__)

# Modules the daemon must never have loaded (the runtime is numpy, OpenCV and one backend).
HEAVY_MODULES = ("tensorflow", "keras", "tf2onnx", "onnx", "torch", "jax")
# Decoder errors that may only mean "not finished arriving yet".
INCOMPLETE_KINDS = ("empty", "truncated")


def run_daemon(config_path: Path | None, overrides: dict[str, Any], *, once: bool = False) -> int:
    cfg = load_config(config_path, overrides)
    setup_logging(cfg.log_level)
    locks = RootLocks(recursive=cfg.recursive)
    locks.acquire(cfg.roots())  # a second daemon on the same, a nested or a parent folder stops
    try:
        daemon = Daemon(config_path, overrides, cfg, once=once)
        daemon.locks = locks
        try:
            return daemon.run()
        finally:
            daemon.shutdown()
    finally:
        locks.release()


def setup_logging(level: str) -> None:
    """One line per event on stderr. Under systemd (JOURNAL_STREAM set) lines carry sd-daemon
    priority prefixes instead of timestamps: journald adds its own and keeps the levels."""
    handler = logging.StreamHandler(sys.stderr)
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(errors="backslashreplace", line_buffering=True)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("edgecrystal")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def heavy_modules() -> list[str]:
    return sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY_MODULES})


class Daemon:
    def __init__(self, config_path: Path | None, overrides: dict[str, Any], cfg: Config, *,
                 once: bool = False) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self.cfg = cfg
        self.once = once
        self.stop = False
        self.reload = False
        self.notifier = Notifier()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pipeline: Any = None
        self.selection: Any = None
        self.watcher: Watcher | None = None
        self.summaries: Any = None
        self.index: Any = None  # an IndexWriter when an index is kept (docs/review.md)
        self.ready: deque[tuple[Path, float]] = deque()  # complete files: (path, when)
        self.queued: set[Path] = set()
        # Handed to the stages (reading, inferring, writing), result not yet booked.
        self.in_flight: set[Path] = set()
        self.stages: Any = None  # a StageRunner over the current pipeline
        self.pending = Pending(cfg.settle_ms / 1000, cfg.trust_close_write)
        self.input_filter = Filter(cfg.roots(), cfg.extensions)
        self.done: dict[Path, tuple[int, int]] = {}  # scored this run: (size, mtime_ns)
        self.attempts: dict[Path, int] = {}
        self.skipped: set[tuple[Path, str]] = set()
        self.dirty: set[Path] = set()
        self.counts = {"scored": 0, "errors": 0, "skipped": 0}
        # Images whose latest result is an error: one that later scores is no longer counted.
        self.error_paths: set[Path] = set()
        self.locks = RootLocks()
        self.last_summary = time.monotonic()
        self.next_rescan = 0.0
        self.ping_every = watchdog_interval()
        self.next_ping = 0.0

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        started = time.monotonic()
        self._install_signals()
        self.notifier.status("loading the bundle")
        self._open_models(self.cfg)
        from ..index.hook import open_writer

        self.index = open_writer(self.cfg.index, name_patterns=self.cfg.name_patterns,
                                 rock_maker_columns=self.cfg.rock_maker_columns)
        self._start_watcher()
        self._rescan("start")
        heavy = heavy_modules()
        log.info("ready backend=%s precision=%s fingerprint=%s watching=%s pending=%d "
                 "heavy_modules=%s pid=%d startup_ms=%.0f", self.selection.backend,
                 self.selection.precision, self.pipeline.model.fingerprint,
                 ",".join(self.cfg.watch), len(self.pending) + len(self.ready),
                 ",".join(heavy) or "none", os.getpid(), (time.monotonic() - started) * 1000)
        log.info("backend %s", self.selection.describe())
        self.notifier.ready(self._status())
        while not self.stop:
            if self.once and not (self.pending.entries or self.ready or self.in_flight):
                log.info("once: nothing left to score, exiting")
                break
            self._wait()
            if self.stop:
                break
            if self.reload:
                self.reload = False
                self._reload()
            self._take_events()
            if time.monotonic() >= self.next_rescan:
                self._rescan("periodic")
            self._collect_ready()
            self._score_if_due()
            self._flush_summaries()
            self._ping()
        self._drain()  # what is in hand is finished and written before the daemon stops
        return 0

    def shutdown(self) -> None:
        self.notifier.stopping()
        self.notifier.status("stopping")
        if self.watcher is not None:
            self.watcher.stop()
        try:
            self._flush_summaries(force=True)
        except Exception as exc:
            log.warning("summary not written at exit: %s", exc)
        if self.stages is not None:
            self.stages.close()
        if self.pipeline is not None:
            self.pipeline.close()
        if self.index is not None:
            self.index.close(timeout=10)
        log.info("stopped scored=%d errors=%d", self.counts["scored"], self.counts["errors"])
        self.notifier.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.stop = True

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self.reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        # SIGUSR1 dumps every thread's stack to the log: how to see where a stuck daemon is.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        # The interpreter writes the signal number to the pipe: select() wakes at once.
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _wake(self) -> None:  # called from the watchdog observer thread
        # A full pipe means the loop is being woken anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.wake_w, b"\0")

    def _wait(self) -> None:
        timeouts = [max(0.0, self.next_rescan - time.monotonic())]
        due = self.pending.next_due()
        if due is not None:
            timeouts.append(due + 0.01)
        # While the reader has no room, its wake-up (not a timeout) says when to go on.
        if self.ready and self.stages.can_submit():
            wait = self.cfg.max_batch_wait_ms / 1000
            timeouts.append(max(0.0, self.ready[0][1] + wait - time.monotonic()))
        if self.dirty:
            timeouts.append(max(0.0, self.last_summary + self.cfg.summary_interval_s
                                - time.monotonic()))
        if self.ping_every:
            timeouts.append(max(0.0, self.next_ping - time.monotonic()))
        try:
            readable, _, _ = select.select([self.wake_r], [], [], min(timeouts))
        except InterruptedError:
            return
        if readable:
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    # ------------------------------------------------------------------ models and config
    def _build_progress(self, line: str) -> None:
        """An engine build's progress: in the log, and in `systemctl status` (STATUS=) while
        the daemon is not yet READY=1 (a first build on an Orin takes minutes). Each line also
        pings the watchdog: a build after SIGHUP (new bundle, precision or dla_core) runs
        while the watchdog is armed, and takes longer than WatchdogSec on an Orin; the
        progress lines come every 15 s from the build's own thread while it runs."""
        log.info("%s", line)
        self.notifier.status(line)
        self._ping()

    def _open_models(self, cfg: Config) -> None:
        from ..bundle import Bundle
        from ..results import Summaries
        from ..session import open_pipeline

        bundle = Bundle.open(cfg.bundle)
        precision = cfg.precision
        if precision == "auto":
            from ..runtime.advice import auto_precision

            advice = auto_precision(bundle, cfg.threads)
            log.info("precision auto: %s", advice.reason)
            precision = advice.precision
        pipe = open_pipeline(bundle, backend=cfg.backend, precision=precision,
                             threads=cfg.threads, providers=cfg.providers,
                             allow_build=cfg.build_engines, dla=dict(cfg.dla_core),
                             progress=self._build_progress, max_pixels=cfg.max_pixels,
                             read_threads=cfg.read_threads, outlines=cfg.overlay)
        try:
            pipe.activate()  # a model that cannot load fails here, before READY=1
        except BaseException:
            pipe.close()
            raise
        selection = pipe.selection
        old, old_stages = self.pipeline, self.stages
        # Read with this pipeline's reader, written with its model record; the old runner is
        # idle here (_reload drains it before opening a new bundle).
        stages: StageRunner[list[Path], list[Loaded], tuple[list[Scored], ModelInfo],
                            list[Path | OSError]]
        self.write_results = _result_writer(cfg.overlay)
        stages = StageRunner(pipe.read, self.write_results, depth=cfg.queue_depth,
                             wake=self._wake, name="serve")
        self.pipeline, self.selection, self.stages = pipe, selection, stages
        self.summaries = Summaries(bundle.classes)
        if old_stages is not None:
            old_stages.close()
        if old is not None:
            old.close()

    def _reload(self) -> None:
        self.notifier.reloading()
        log.info("reload requested (SIGHUP)")
        try:
            cfg = load_config(self.config_path, self.overrides)
        except EdgeCrystalError as exc:
            log.error("reload: bad config, keeping the old one: %s", exc)
            self.notifier.ready(self._status())
            return
        roots_changed = (cfg.watch, cfg.recursive) != (self.cfg.watch, self.cfg.recursive)
        if roots_changed:
            try:
                self.locks.retarget(cfg.roots(), cfg.recursive)
            except EdgeCrystalError as exc:
                log.error("reload: keeping the old config: %s", exc)
                self.notifier.ready(self._status())
                return
        old_fp = self.pipeline.model.fingerprint
        self._drain()  # batches in flight are scored by the bundle they were read for
        try:
            self._open_models(cfg)
        except EdgeCrystalError as exc:
            log.error("reload: cannot open the bundle, keeping the old one: %s", exc)
            if roots_changed:
                # Held before this reload: free again.
                self.locks.retarget(self.cfg.roots(), self.cfg.recursive)
            self.notifier.ready(self._status())
            return
        self.cfg = cfg
        setup_logging(cfg.log_level)
        self.input_filter = Filter(cfg.roots(), cfg.extensions)
        self.pending.settle = cfg.settle_ms / 1000
        self.pending.trust_close = cfg.trust_close_write
        if roots_changed and self.watcher is not None:
            self.watcher.stop()
            self._start_watcher()
        if self.pipeline.model.fingerprint != old_fp:
            self.done.clear()
        log.info("reloaded config=%s backend=%s precision=%s fingerprint=%s", cfg.source,
                 self.selection.backend, self.selection.precision,
                 self.pipeline.model.fingerprint)
        self._rescan("reload")
        self.notifier.ready(self._status())

    def _start_watcher(self) -> None:
        self.watcher = Watcher(self.cfg.roots(), self.cfg.recursive, self._wake)
        for problem in self.watcher.failed:
            log.warning("inotify unavailable for %s; relying on rescans", problem)

    # ------------------------------------------------------------------ finding work
    def _rescan(self, why: str) -> None:
        t = time.monotonic()
        n = 0
        # At start, what a killed daemon was writing when it died is debris in these folders.
        debris_in: set[Path] | None = set(self.cfg.roots()) if why == "start" else None
        for path in scan(self.cfg.roots(), self.cfg.recursive, self.input_filter.wanted_name):
            if debris_in is not None:
                debris_in.add(path.parent)
            if self._consider(path, closed=False):
                n += 1
        if debris_in is not None:
            from ..results import remove_stale_temporaries

            for folder in debris_in:
                remove_stale_temporaries(folder)
        self.next_rescan = time.monotonic() + self.cfg.rescan_interval_s
        if n or why != "periodic":
            log.info("scan reason=%s new=%d ms=%.0f", why, n, (time.monotonic() - t) * 1000)

    def _take_events(self) -> None:
        if self.watcher is None:
            return
        for path, closed in self.watcher.drain():
            if path.is_dir() and not path.is_symlink():
                # A folder created or moved in may already hold images.
                if self.cfg.recursive:
                    for p in scan([path], True, self.input_filter.wanted_name):
                        self._consider(p, closed=True)
                continue
            if self.input_filter.wanted_name(path):
                self._consider(path, closed=closed)

    def _consider(self, path: Path, *, closed: bool) -> bool:
        """Queue `path` unless it is done, skipped or already queued; True when queued."""
        if path in self.queued or path in self.in_flight:
            return False
        if not os.path.lexists(path):  # deleted: forget it (a long-running daemon stays flat)
            self.done.pop(path, None)
            return False
        reason = self.input_filter.check(path)
        if reason is not None:
            if (path, reason) not in self.skipped:  # one log line per file and reason
                self.skipped.add((path, reason))
                self.counts["skipped"] += 1
                log.warning("skip path=%s reason=%s", _q(path), reason)
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        if self.done.get(path) == (st.st_size, st.st_mtime_ns):
            return False
        if self.cfg.ignore_older_than_days and \
                time.time() - st.st_mtime > self.cfg.ignore_older_than_days * 86400:
            return False
        from ..results import is_done

        if path not in self.pending.entries and is_done(path, self.pipeline.model.fingerprint,
                                                        st):
            self.done[path] = (st.st_size, st.st_mtime_ns)
            return False
        # A rescan finds files that inotify already reported, or that sat there while the
        # daemon was down: the settle rule still applies (they may be mid-copy).
        self.pending.touch(path, closed=closed)
        return True

    def _collect_ready(self) -> None:
        ready, gone = self.pending.take_ready()
        now = time.monotonic()
        for path in ready:
            if path not in self.queued:
                self.queued.add(path)
                self.ready.append((path, now))
        for path in gone:
            log.info("vanished path=%s (deleted before scoring)", _q(path))

    # ------------------------------------------------------------------ scoring
    def _score_if_due(self) -> None:
        """Move the burst along without blocking for long: hand due batches to the reader while
        it has room, infer a decoded batch when one is there and hand it to the writer, and take
        back what was written. The stage threads wake the loop when they finish something.
        A stop or a reload (SIGHUP) ends the burst between two batches, not after the backlog:
        the main loop then drains what is in the stages and answers it."""
        while not (self.stop or self.reload):
            moved = self._submit_due()
            decoded = self.stages.take_decoded(block=False)
            if decoded is not None:
                self._infer(decoded)
                moved = True
            for written in self.stages.take_written():
                self._finish(written)
                moved = True
            if not moved:
                return
            self._take_events()  # keep the event queue short during a burst
            self._collect_ready()
            self._ping()

    def _submit_due(self) -> bool:
        submitted = False
        while self.ready and self.stages.can_submit():
            full = len(self.ready) >= self.cfg.batch_size
            waited = time.monotonic() - self.ready[0][1] >= self.cfg.max_batch_wait_ms / 1000
            if not (full or waited or self.once):
                break
            batch = [self.ready.popleft()[0] for _ in range(min(self.cfg.batch_size,
                                                                 len(self.ready)))]
            for p in batch:
                # Queued no more, but in flight: neither an event nor a rescan queues it again
                # until its result is written (a rewrite meanwhile is caught in _finish).
                self.queued.discard(p)
                self.in_flight.add(p)
            if not (self.ready or self.stages.busy):
                # All there is (a trickle): no batch to read before or write after this one,
                # so the three stages run here, without two thread hand-offs in the latency.
                self._score_inline(batch)
            else:
                self.stages.submit(batch)
            submitted = True
        return submitted

    def _score_inline(self, batch: list[Path]) -> None:
        try:
            decoded = Decoded(batch, self.pipeline.read(batch))
        except Exception as exc:  # as the reader thread hands it over: _infer retries
            decoded = Decoded(batch, None, exc)
        self._infer(decoded, inline=True)

    def _drain(self) -> None:
        """Finish every batch already handed to the stages (stop, reload): all are scored by the
        pipeline they were read for, and written, before it goes."""
        while self.stages is not None and self.stages.busy:
            decoded = self.stages.take_decoded(block=True)
            if decoded is not None:
                self._infer(decoded)
            for written in self.stages.take_written(block=decoded is None):
                self._finish(written)

    def _infer(self, decoded: Decoded[list[Path], list[Loaded]], *, inline: bool = False) -> None:
        """Inference on the main thread (it owns the backend), then to the writer with the
        ModelInfo of the pipeline that really ran: each result names its own models."""
        batch = decoded.batch
        try:
            if decoded.error is not None:
                raise decoded.error
            results = self.pipeline.infer(decoded.value)
        except Exception as exc:  # an inference failure is not the images' fault: retry
            log.error("batch failed size=%d error=%s", len(batch), one_line(exc))
            for p in batch:
                self.in_flight.discard(p)
                self._retry(p, f"inference failed: {one_line(exc)}")
            return
        to_write = []
        for r in results:
            if r.error_kind == "missing":
                self.in_flight.discard(r.path)
                log.info("vanished path=%s (deleted before scoring)", _q(r.path))
            elif r.error_kind in INCOMPLETE_KINDS and self._still_arriving(r):
                self.in_flight.discard(r.path)
                self.pending.touch(r.path)
            else:
                to_write.append(r)
        item = (to_write, self.pipeline.model)
        if inline:
            self._finish(Written(item, self.write_results(item)))
        else:
            self.stages.write(item)

    def _finish(self, written: Written[tuple[list[Scored], ModelInfo],
                                       list[Path | OSError]]) -> None:
        """Book what the writer did, on the main thread: the only place `done`, the counts and
        the retries change."""
        results, _ = written.item
        outcomes: list[Path | OSError] = list(written.outcome or [])
        if written.error is not None:
            outcomes = [OSError(one_line(written.error))] * len(results)
        for r, out in zip(results, outcomes, strict=True):
            path = r.path
            self.in_flight.discard(path)
            if isinstance(out, OSError):  # disk full, folder removed, read-only share
                self._retry(path, f"cannot write result: {out.strerror or out}")
                continue
            if self.index is not None:
                self.index.add(out)  # queued only: the index never holds the daemon back
            self.attempts.pop(path, None)
            if r.stat is not None:
                self.done[path] = (r.stat.st_size, r.stat.st_mtime_ns)
            self.dirty.add(path.parent)
            self._log_scored(r)
            # Rewritten under the same name while it was in flight: the result vouches for
            # the bytes it scored (their stat), and the new bytes get their own.
            self._consider(path, closed=False)
        self.notifier.status(self._status())

    def _log_scored(self, r: Scored) -> None:
        path = r.path
        total = sum(r.timings_ms.values())
        if r.ok:
            self.counts["scored"] += 1
            self.error_paths.discard(path)
            self.counts["errors"] = len(self.error_paths)
            log.info("scored path=%s label=%s p=%.3f drop=%s ms=%.1f", _q(path), r.label,
                     r.scores.get(r.label or "", 0.0), "yes" if r.found else "no", total)
        else:
            self.error_paths.add(path)
            self.counts["errors"] = len(self.error_paths)
            log.warning("scored path=%s status=error kind=%s reason=%s", _q(path),
                        r.error_kind, r.error_reason)

    def _still_arriving(self, r: Scored) -> bool:
        """An empty or cut-short file that changed while we read it, or is younger than the
        settle time, is most likely still being written: wait for it instead of failing it."""
        try:
            st = os.stat(r.path)
        except OSError:
            return False
        changed = r.stat is None or (st.st_size, st.st_mtime_ns) != (r.stat.st_size,
                                                                     r.stat.st_mtime_ns)
        young = time.time() - st.st_mtime < self.cfg.settle_ms / 1000
        if not (changed or young) and open_for_writing(r.path):
            young = True  # the writer paused with the file open: it is not finished
        if changed or young:
            log.debug("incomplete path=%s waiting", _q(r.path))
        return changed or young

    def _retry(self, path: Path, reason: str) -> None:
        n = self.attempts.get(path, 0) + 1
        self.attempts[path] = n
        if n > self.cfg.retry_max:
            log.error("giving up path=%s after %d attempts: %s (next rescan tries again)",
                      _q(path), n - 1, reason)
            self.attempts.pop(path, None)
            return
        delay = min(self.cfg.retry_max_backoff_s, self.cfg.retry_backoff_s * 2 ** (n - 1))
        log.warning("retry path=%s attempt=%d in_s=%.1f reason=%s", _q(path), n, delay, reason)
        self.pending.touch(path, not_before=time.monotonic() + delay)

    def _flush_summaries(self, force: bool = False) -> None:
        if not self.cfg.summary:
            self.dirty.clear()
        if not self.dirty:
            return
        idle = not self.ready
        if not (force or idle or time.monotonic() - self.last_summary
                >= self.cfg.summary_interval_s):
            return
        for folder in sorted(self.dirty):
            try:
                self.summaries.update(folder)
            except OSError as exc:
                log.warning("summary not written folder=%s: %s", _q(folder), exc)
        self.dirty.clear()
        self.last_summary = time.monotonic()

    def _ping(self) -> None:
        if self.ping_every and time.monotonic() >= self.next_ping:
            self.notifier.watchdog()
            self.next_ping = time.monotonic() + self.ping_every

    def _status(self) -> str:
        return (f"scored {self.counts['scored']}, errors {self.counts['errors']}, "
                f"waiting {len(self.pending) + len(self.ready)}, backend "
                f"{self.selection.backend if self.selection else '?'}")


def _result_writer(overlay: bool) -> Callable[[tuple[list[Scored], ModelInfo]],
                                              list[Path | OSError]]:
    """The write stage: each result (and overlay) beside its image; a write that fails (disk
    full, folder removed, read-only share) is an outcome the main thread retries, not an end."""
    from ..results import write_result

    def write(item: tuple[list[Scored], ModelInfo]) -> list[Path | OSError]:
        results, model = item
        outcomes: list[Path | OSError] = []
        for r in results:
            try:
                outcomes.append(write_result(r, model, overlay=overlay))
            except OSError as exc:
                outcomes.append(exc)
        return outcomes

    return write


def _q(path: Path) -> str:
    """A path on one log line: quoted when it holds spaces, newlines escaped."""
    s = str(path).replace("\n", "\\n")
    return f'"{s}"' if (" " in s or '"' in s) else s
