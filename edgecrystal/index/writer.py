"""Feeding the index from `score` and `serve` without ever holding them back.

The caller writes the result file first, then hands its path to `IndexWriter.add`, which only
queues it. A background thread reads the result files and upserts them in batches. When the
database is away the thread keeps the paths, logs one line, and tries again with a growing
pause; when it is back it catches up. Whatever is still queued at exit is in the result files,
and `edgecrystal index sync ROOT` brings it in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from ..naming import NameReader
from .store import BATCH_ROWS, Index, IndexUnavailable, one_line, redact

log = logging.getLogger(__name__)


class IndexWriter:
    def __init__(self, url: str, reader: NameReader | None = None, *,
                 retry_s: float = 2.0, max_retry_s: float = 60.0,
                 max_backlog: int = 200_000) -> None:
        self.url = url
        self.reader = reader or NameReader()
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.max_backlog = max_backlog
        self.written = 0
        self.dropped = 0
        self._queue: deque[Path] = deque()
        self._lock = threading.Condition()
        self._closing = False
        self._index: Index | None = None
        self._down_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="edgecrystal-index", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the caller's side
    def add(self, result: str | Path) -> None:
        """Queue a result file (already written) for the index. Never blocks, never raises."""
        with self._lock:
            self._queue.append(Path(result))
            if len(self._queue) > self.max_backlog:
                # Memory stays bounded through a long outage; the file is still on disk.
                self._queue.popleft()
                self.dropped += 1
            self._lock.notify()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def close(self, timeout: float = 30.0) -> int:
        """Write what is queued (for at most `timeout` seconds); returns how many results are
        still not in the index (0 when it caught up)."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)
        left = self.pending + self.dropped
        if left:
            log.warning("index %s is behind by %d result(s) (database unavailable); they are "
                        "in the result files: run `edgecrystal index sync ROOT --index URL`",
                        redact(self.url), left)
        if self._index is not None and not self._thread.is_alive():
            self._index.close()
        return left

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        pause = self.retry_s
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return  # closing and nothing left
                batch = [self._queue[i] for i in range(min(BATCH_ROWS, len(self._queue)))]
            try:
                self._write(batch)
            except Exception as exc:  # any database trouble: keep the batch, wait, retry
                self._went_down(exc)
                if self._closing:
                    return
                with self._lock:
                    self._lock.wait(pause)
                pause = min(self.max_retry_s, pause * 2)
                continue
            pause = self.retry_s
            with self._lock:
                for _ in batch:
                    if self._queue:
                        self._queue.popleft()

    def _write(self, batch: list[Path]) -> None:
        from .sync import read_rows

        if self._index is None:
            self._index = Index.open(self.url)
        rows = read_rows(batch, self.reader)
        self._index.upsert(rows)
        self.written += len(rows)
        if self._down_since is not None:
            log.info("index %s is back after %.0f s; catching up (%d queued)",
                     redact(self.url), time.monotonic() - self._down_since, self.pending)
            self._down_since = None

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            reason = str(exc) if isinstance(exc, IndexUnavailable) else one_line(exc)
            log.warning("index %s unavailable, results are kept and written when it is back: "
                        "%s", redact(self.url), reason)
        if self._index is not None:
            # Drop pooled connections to a server that went away; the next try reconnects.
            self._index.engine.dispose()
