"""Scoring what the intake found: batches to the stages (edgecrystal/stages.py: a reader thread
decodes the next batch, the main thread infers, a writer thread writes the last), inference on
the main thread (it owns the backend: a CUDA context belongs to the thread that made it), and the
booking of each written result in the ledger, the index and the folder summaries."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import one_line
from ..stages import Decoded, StageRunner, Written
from .config import Config
from .health import Health
from .intake import Intake
from .ledger import Ledger
from .logs import quoted
from .watcher import open_for_writing

if TYPE_CHECKING:  # loaded inside the daemon's start, after the config is checked
    from ..index.writer import IndexWriter
    from ..pipeline import Loaded, ModelInfo, Pipeline, Scored
    from ..results import Summaries
    from ..runtime.select import Selection

log = logging.getLogger(__name__)

# Decoder errors that may only mean "not finished arriving yet".
INCOMPLETE_KINDS = ("empty", "truncated")

# What the writer stage is handed (the results and the models that really ran) and gives back
# for each result: the result file written, or why not.
ToWrite = tuple[list["Scored"], "ModelInfo"]
Outcomes = list[Path | OSError]


@dataclass
class Models:
    """One opened bundle and the stages that read for it and write its results."""

    pipeline: Pipeline
    selection: Selection
    stages: StageRunner[list[Path], list[Loaded], ToWrite, Outcomes]
    write: Callable[[ToWrite], Outcomes]
    summaries: Summaries

    def close(self) -> None:
        self.stages.close()
        self.pipeline.close()


def open_pipeline(cfg: Config, progress: Callable[[str], None]) -> tuple[Pipeline, Selection]:
    """The bundle as a pipeline for the configured backend and precision, through the one
    scoring session, its models loaded now: a model that cannot load fails here, before
    READY=1."""
    from ..bundle import Bundle
    from ..session import open_pipeline as open_session

    bundle = Bundle.open(cfg.bundle)
    precision = cfg.precision
    if precision == "auto":
        from ..runtime.advice import auto_precision

        advice = auto_precision(bundle, cfg.threads)
        log.info("precision auto: %s", advice.reason)
        precision = advice.precision
    pipe = open_session(bundle, backend=cfg.backend, precision=precision, threads=cfg.threads,
                        providers=list(cfg.providers), allow_build=cfg.build_engines,
                        dla=dict(cfg.dla_core), progress=progress, max_pixels=cfg.max_pixels,
                        read_threads=cfg.read_threads, outlines=cfg.overlay)
    try:
        pipe.activate()
    except BaseException:
        pipe.close()
        raise
    assert pipe.selection is not None  # the session always records what it chose
    return pipe, pipe.selection


def open_models(cfg: Config, progress: Callable[[str], None],
                wake: Callable[[], None]) -> Models:
    """A pipeline and its stages: read with this pipeline's reader, written with its model
    record."""
    from ..results import Summaries

    pipe, selection = open_pipeline(cfg, progress)
    write = result_writer(cfg.overlay)
    stages: StageRunner[list[Path], list[Loaded], ToWrite, Outcomes] = StageRunner(
        pipe.read, write, depth=cfg.queue_depth, wake=wake, name="serve")
    return Models(pipe, selection, stages, write, Summaries(pipe.classes))


def result_writer(overlay: bool) -> Callable[[ToWrite], Outcomes]:
    """The write stage: each result (and overlay) beside its image; a write that fails (disk
    full, folder removed, read-only share) is an outcome the main thread retries, not an end."""
    from ..results import write_result

    def write(item: ToWrite) -> Outcomes:
        results, model = item
        outcomes: Outcomes = []
        for r in results:
            try:
                outcomes.append(write_result(r, model, overlay=overlay))
            except OSError as exc:
                outcomes.append(exc)
        return outcomes

    return write


class Worker:
    def __init__(self, cfg: Config, models: Models, ledger: Ledger, intake: Intake,
                 health: Health, index: IndexWriter | None, *, once: bool = False) -> None:
        self.cfg = cfg
        self.models = models
        self.ledger = ledger
        self.intake = intake
        self.health = health
        self.index = index  # an IndexWriter when an index is kept (docs/review.md)
        self.once = once
        self.last_summary = time.monotonic()
        ledger.fingerprint = models.pipeline.model.fingerprint

    def swap(self, cfg: Config, models: Models) -> None:
        """Score with `models` from now on; the old ones are idle (drained) and closed here."""
        old, self.models, self.cfg = self.models, models, cfg
        old.close()
        if models.pipeline.model.fingerprint != self.ledger.fingerprint:
            self.ledger.done.clear()  # what the old models scored, the new ones score again
        self.ledger.fingerprint = models.pipeline.model.fingerprint

    def close(self) -> None:
        self.models.close()

    def status(self) -> str:
        """The STATUS= line of `systemctl status`."""
        return (f"scored {self.ledger.scored}, errors {self.ledger.errors}, "
                f"waiting {self.intake.waiting}, backend {self.models.selection.backend}")

    def due_in(self) -> float | None:
        """Seconds until a batch or a summary is due by time (None: nothing is)."""
        timeouts = []
        # While the reader has no room, its wake-up (not a timeout) says when to go on.
        if self.ledger.ready and self.models.stages.can_submit():
            wait = self.cfg.max_batch_wait_ms / 1000
            timeouts.append(max(0.0, self.ledger.ready[0][1] + wait - time.monotonic()))
        if self.ledger.dirty:
            timeouts.append(max(0.0, self.last_summary + self.cfg.summary_interval_s
                                - time.monotonic()))
        return min(timeouts) if timeouts else None

    # ------------------------------------------------------------------ moving batches
    def work(self, interrupted: Callable[[], bool]) -> None:
        """Move the burst along without blocking for long: hand due batches to the reader while
        it has room, infer a decoded batch when one is there and hand it to the writer, and take
        back what was written. The stage threads wake the loop when they finish something.
        A stop or a reload (SIGHUP) ends the burst between two batches, not after the backlog:
        the main loop then drains what is in the stages and answers it."""
        stages = self.models.stages
        while not interrupted():
            moved = self._submit_due()
            decoded = stages.take_decoded(block=False)
            if decoded is not None:
                self._infer(decoded)
                moved = True
            for written in stages.take_written():
                self._finish(written)
                moved = True
            if not moved:
                return
            self.intake.take_events()  # keep the event queue short during a burst
            self.intake.collect_ready()
            self.health.ping()

    def drain(self) -> None:
        """Finish every batch already handed to the stages (stop, reload): all are scored by the
        pipeline they were read for, and written, before it goes."""
        stages = self.models.stages
        while stages.busy:
            decoded = stages.take_decoded(block=True)
            if decoded is not None:
                self._infer(decoded)
            for written in stages.take_written(block=decoded is None):
                self._finish(written)

    def _submit_due(self) -> bool:
        ready, stages = self.ledger.ready, self.models.stages
        submitted = False
        while ready and stages.can_submit():
            full = len(ready) >= self.cfg.batch_size
            waited = time.monotonic() - ready[0][1] >= self.cfg.max_batch_wait_ms / 1000
            if not (full or waited or self.once):
                break
            batch = [ready.popleft()[0] for _ in range(min(self.cfg.batch_size, len(ready)))]
            for p in batch:
                # Queued no more, but in flight: neither an event nor a rescan queues it again
                # until its result is written (a rewrite meanwhile is caught in _finish).
                self.ledger.queued.discard(p)
                self.ledger.in_flight.add(p)
            if not (ready or stages.busy):
                # All there is (a trickle): no batch to read before or write after this one,
                # so the three stages run here, without two thread hand-offs in the latency.
                self._score_inline(batch)
            else:
                stages.submit(batch)
            submitted = True
        return submitted

    def _score_inline(self, batch: list[Path]) -> None:
        try:
            decoded = Decoded(batch, self.models.pipeline.read(batch))
        except Exception as exc:  # as the reader thread hands it over: _infer retries
            decoded = Decoded(batch, None, exc)
        self._infer(decoded, inline=True)

    # ------------------------------------------------------------------ inferring, booking
    def _infer(self, decoded: Decoded[list[Path], list[Loaded]], *, inline: bool = False) -> None:
        """Inference on the main thread (it owns the backend), then to the writer with the
        ModelInfo of the pipeline that really ran: each result names its own models."""
        batch, pipeline = decoded.batch, self.models.pipeline
        try:
            if decoded.error is not None or decoded.value is None:
                raise decoded.error or RuntimeError("the read stage gave no images")
            results = pipeline.infer(decoded.value)
        except Exception as exc:  # an inference failure is not the images' fault: retry
            log.error("batch failed size=%d error=%s", len(batch), one_line(exc))
            for p in batch:
                self.ledger.in_flight.discard(p)
                self._retry(p, f"inference failed: {one_line(exc)}")
            return
        to_write = []
        for r in results:
            if r.error_kind == "missing":
                self.ledger.in_flight.discard(r.path)
                log.info("vanished path=%s (deleted before scoring)", quoted(r.path))
            elif r.error_kind in INCOMPLETE_KINDS and self._still_arriving(r):
                self.ledger.in_flight.discard(r.path)
                self.intake.wait_again(r.path)
            else:
                to_write.append(r)
        item = (to_write, pipeline.model)
        if inline:
            self._finish(Written(item, self.models.write(item)))
        else:
            self.models.stages.write(item)

    def _finish(self, written: Written[ToWrite, Outcomes]) -> None:
        """Book what the writer did, on the main thread: the only place `done`, the counts and
        the retries change."""
        results, _ = written.item
        outcomes: Outcomes = list(written.outcome or [])
        if written.error is not None:
            outcomes = [OSError(one_line(written.error))] * len(results)
        for r, out in zip(results, outcomes, strict=True):
            path = r.path
            self.ledger.in_flight.discard(path)
            if isinstance(out, OSError):  # disk full, folder removed, read-only share
                self._retry(path, f"cannot write result: {out.strerror or out}")
                continue
            if self.index is not None:
                self.index.add(out)  # queued only: the index never holds the daemon back
            self.ledger.attempts.pop(path, None)
            if r.stat is not None:
                self.ledger.done[path] = (r.stat.st_size, r.stat.st_mtime_ns)
            self.ledger.dirty.add(path.parent)
            self._log_scored(r)
            # Rewritten under the same name while it was in flight: the result vouches for
            # the bytes it scored (their stat), and the new bytes get their own.
            self.intake.consider(path, closed=False)
        self.health.status(self.status())

    def _log_scored(self, r: Scored) -> None:
        path = r.path
        total = sum(r.timings_ms.values())
        if r.ok:
            self.ledger.scored += 1
            self.ledger.error_paths.discard(path)
            log.info("scored path=%s label=%s p=%.3f drop=%s ms=%.1f", quoted(path), r.label,
                     r.scores.get(r.label or "", 0.0), "yes" if r.found else "no", total)
        else:
            self.ledger.error_paths.add(path)
            log.warning("scored path=%s status=error kind=%s reason=%s", quoted(path),
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
            log.debug("incomplete path=%s waiting", quoted(r.path))
        return changed or young

    def _retry(self, path: Path, reason: str) -> None:
        n = self.ledger.attempts.get(path, 0) + 1
        self.ledger.attempts[path] = n
        if n > self.cfg.retry_max:
            log.error("giving up path=%s after %d attempts: %s (next rescan tries again)",
                      quoted(path), n - 1, reason)
            self.ledger.attempts.pop(path, None)
            return
        delay = min(self.cfg.retry_max_backoff_s, self.cfg.retry_backoff_s * 2 ** (n - 1))
        log.warning("retry path=%s attempt=%d in_s=%.1f reason=%s", quoted(path), n, delay,
                    reason)
        self.intake.wait_again(path, not_before=time.monotonic() + delay)

    # ------------------------------------------------------------------ summaries
    def flush_summaries(self, force: bool = False) -> None:
        dirty = self.ledger.dirty
        if not self.cfg.summary:
            dirty.clear()
        if not dirty:
            return
        idle = not self.ledger.ready
        if not (force or idle or time.monotonic() - self.last_summary
                >= self.cfg.summary_interval_s):
            return
        for folder in sorted(dirty):
            try:
                self.models.summaries.update(folder)
            except OSError as exc:
                log.warning("summary not written folder=%s: %s", quoted(folder), exc)
        dirty.clear()
        self.last_summary = time.monotonic()
