"""What the daemon knows about the images it watches. Only the main thread reads or changes
it; the intake (finding work) and the worker (scoring it) share this one record."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ledger:
    # Finished arriving, waiting for a batch: (path, when it became ready).
    ready: deque[tuple[Path, float]] = field(default_factory=deque)
    queued: set[Path] = field(default_factory=set)  # the paths in `ready`
    # Handed to the stages (reading, inferring, writing), result not yet booked.
    in_flight: set[Path] = field(default_factory=set)
    done: dict[Path, tuple[int, int]] = field(default_factory=dict)  # scored: (size, mtime_ns)
    attempts: dict[Path, int] = field(default_factory=dict)  # failed tries, for the backoff
    skipped: set[tuple[Path, str]] = field(default_factory=set)  # logged once per reason
    dirty: set[Path] = field(default_factory=set)  # folders whose summary is out of date
    # Images whose latest result is an error: one that later scores is no longer counted.
    error_paths: set[Path] = field(default_factory=set)
    scored: int = 0
    skips: int = 0
    # The models that score now: a result file by others counts as done only if it names them.
    fingerprint: str = ""

    @property
    def errors(self) -> int:
        return len(self.error_paths)
