"""Three stages at once over bounded queues: a reader thread decodes batch k+1 while the calling
thread infers batch k and a writer thread writes batch k-1.

The calling thread keeps inference because it owns the backend (a CUDA context belongs to the
thread that made it); reading and writing are I/O and OpenCV work that release the GIL. Every
queue holds at most `depth` batches and a stage blocks when the next one is full, so however
many images wait (a 10,000-image burst), only a handful of batches are ever in memory: the
waiting images stay paths until the reader has room.

The runner knows nothing about images: `read` turns a batch (a list of paths) into whatever
`infer` wants, `write` turns what `infer` gave into an outcome. Callers drive it either with
`run_all` (score: a known list of batches) or step by step (the daemon's loop: `submit` without
blocking, `take_decoded`, `write`, `take_written`; `wake` tells the loop a stage finished).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Batch = TypeVar("Batch")
Read = TypeVar("Read")
Inferred = TypeVar("Inferred")
Outcome = TypeVar("Outcome")

_STOP = object()  # the sentinel that ends a stage thread
_POLL_S = 0.1  # how often a blocked reader looks whether the runner is closing


@dataclass
class Decoded(Generic[Batch, Read]):
    """One batch after the read stage: what `read` gave, or the exception it raised."""

    batch: Batch
    value: Read | None
    error: BaseException | None = None


@dataclass
class Written(Generic[Inferred, Outcome]):
    """One batch after the write stage: what `write` returned, or the exception it raised."""

    item: Inferred
    outcome: Outcome | None
    error: BaseException | None = None


class StageRunner(Generic[Batch, Read, Inferred, Outcome]):
    def __init__(self, read: Callable[[Batch], Read], write: Callable[[Inferred], Outcome], *,
                 depth: int = 1, wake: Callable[[], None] | None = None,
                 name: str = "stage") -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._read = read
        self._write = write
        self._wake = wake or (lambda: None)
        self._to_read: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._decoded: queue.Queue[Decoded[Batch, Read]] = queue.Queue(maxsize=depth)
        self._to_write: queue.Queue[object] = queue.Queue(maxsize=depth)
        # Outcomes are small (paths and results' names), and there are never more of them than
        # batches handed to the writer: this one needs no bound of its own.
        self._written: queue.SimpleQueue[Written[Inferred, Outcome]] = queue.SimpleQueue()
        self._closing = threading.Event()
        # Batches the read side holds at most: queued, in the reader's hand, decoded. Below
        # this a submit never waits long (the reader is free to take the next one).
        self._read_capacity = 2 * depth + 1
        self.reading = 0  # submitted, not yet taken back decoded (only the caller changes it)
        self.writing = 0  # handed to the writer, outcome not yet taken back
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-read",
                                        daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"{name}-write",
                                        daemon=True)
        self._reader.start()
        self._writer.start()

    # ------------------------------------------------------------------ the caller's side
    @property
    def busy(self) -> bool:
        """Something submitted is not back yet (decoded batches or written outcomes)."""
        return self.reading > 0 or self.writing > 0

    def can_submit(self) -> bool:
        """A submit now waits at most until the reader takes its current batch."""
        return self.reading < self._read_capacity

    def submit(self, batch: Batch, *, block: bool = True) -> bool:
        """Hand a batch to the reader; False (and nothing queued) when full and not blocking."""
        try:
            self._to_read.put(batch, block=block)
        except queue.Full:
            return False
        self.reading += 1
        return True

    def take_decoded(self, *, block: bool = True) -> Decoded[Batch, Read] | None:
        """The next decoded batch in submission order; None when none is ready and not blocking."""
        if self.reading == 0:
            return None
        try:
            decoded = self._decoded.get(block=block)
        except queue.Empty:
            return None
        self.reading -= 1
        return decoded

    def write(self, item: Inferred) -> None:
        """Hand an inferred batch to the writer (blocks while the writer's queue is full)."""
        self._to_write.put(item)
        self.writing += 1

    def take_written(self, *, block: bool = False) -> list[Written[Inferred, Outcome]]:
        """The outcomes written so far, in order; with `block`, waits for at least one."""
        taken: list[Written[Inferred, Outcome]] = []
        if block and self.writing > 0:
            taken.append(self._written.get())
        while True:
            try:
                taken.append(self._written.get_nowait())
            except queue.Empty:
                break
        self.writing -= len(taken)
        return taken

    def run_all(self, batches: Iterable[Batch], infer: Callable[[Read], Inferred],
                collect: Callable[[Written[Inferred, Outcome]], None]) -> None:
        """Every batch through all three stages; `collect` gets each outcome (or the write's
        error) on this thread. A read error is raised here, once the writer is idle."""
        try:
            for batch in batches:
                if not self.can_submit():  # the read side is full: infer one meanwhile
                    self._infer_next(infer, collect)
                self.submit(batch)
            while self.reading:
                self._infer_next(infer, collect)
        finally:
            while self.writing:
                for written in self.take_written(block=True):
                    collect(written)

    def close(self) -> None:
        """Stop both threads. Batches handed to the writer are written first; submitted batches
        not yet taken back decoded are dropped (their images are still only paths)."""
        self._closing.set()
        self._to_write.put(_STOP)
        self._writer.join()
        while True:  # unblock a reader waiting for room, then stop it
            try:
                self._decoded.get_nowait()
            except queue.Empty:
                break
        # A full queue: the reader sees _closing on its next poll instead.
        with contextlib.suppress(queue.Full):
            self._to_read.put(_STOP, timeout=5 * _POLL_S)
        self._reader.join()

    def __enter__(self) -> StageRunner[Batch, Read, Inferred, Outcome]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _infer_next(self, infer: Callable[[Read], Inferred],
                    collect: Callable[[Written[Inferred, Outcome]], None]) -> None:
        decoded = self.take_decoded()
        assert decoded is not None
        if decoded.error is not None:
            raise decoded.error
        self.write(infer(decoded.value))  # type: ignore[arg-type]  # no error: a value
        for written in self.take_written():
            collect(written)

    # ------------------------------------------------------------------ the threads
    def _read_loop(self) -> None:
        while not self._closing.is_set():
            batch = self._to_read.get()
            if batch is _STOP:
                return
            try:
                decoded = Decoded[Batch, Read](batch, self._read(batch))  # type: ignore[arg-type]
            except Exception as exc:  # handed to the caller, who decides (retry, raise)
                decoded = Decoded[Batch, Read](batch, None, exc)  # type: ignore[arg-type]
            while not self._closing.is_set():
                try:
                    self._decoded.put(decoded, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            self._wake()

    def _write_loop(self) -> None:
        while True:
            item = self._to_write.get()
            if item is _STOP:
                return
            try:
                written = Written[Inferred, Outcome](item, self._write(item))  # type: ignore[arg-type]
            except Exception as exc:
                log.error("write stage failed: %s", exc)
                written = Written[Inferred, Outcome](item, None, exc)  # type: ignore[arg-type]
            self._written.put(written)
            self._wake()
