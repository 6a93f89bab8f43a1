"""Finding images: inotify events (through watchdog) plus periodic rescans, a filter for what
is an input at all, and the "has this file finished arriving?" bookkeeping.

The watchdog observer runs in its own thread; it only puts paths on a queue and wakes the main
loop through its self-pipe. All decisions are made on the main thread.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..discovery import is_input_name, link_out_of, within

if TYPE_CHECKING:  # watchdog loads when the daemon starts watching
    from watchdog.events import FileSystemEvent


class Filter:
    """What counts as an input image, and the safety rules (no way out of the watched roots)."""

    def __init__(self, roots: list[Path], extensions: tuple[str, ...]) -> None:
        self.roots = [r.resolve() for r in roots]
        self.extensions = tuple(e.lower() for e in extensions)

    def wanted_name(self, path: Path) -> bool:
        return is_input_name(path.name, self.extensions)

    def check(self, path: Path) -> str | None:
        """None when `path` may be scored; otherwise why it is skipped."""
        if not within(Path(os.path.abspath(path)), self.roots):
            return "outside the watched folders"
        why = link_out_of(path, self.roots)
        if why is not None:
            return why
        try:
            if not path.is_file():
                return "not a regular file"
        except OSError as exc:
            return f"cannot stat: {exc.strerror or exc}"
        return None


@dataclass
class Entry:
    size: int
    mtime_ns: int
    changed: float  # monotonic time the size/mtime were last seen to change
    closed: bool = False  # IN_CLOSE_WRITE seen since the last change
    not_before: float = 0.0  # retry backoff


class Pending:
    """Files seen but not yet complete. A file is complete when inotify saw it closed after
    writing and it has not changed since (trust_close), or when its size and mtime have stayed
    the same for `settle` seconds (what works on network shares, where there are no events)."""

    def __init__(self, settle: float, trust_close: bool) -> None:
        self.settle = settle
        self.trust_close = trust_close
        self.entries: dict[Path, Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def touch(self, path: Path, *, closed: bool = False, not_before: float = 0.0) -> None:
        now = time.monotonic()
        e = self.entries.get(path)
        try:
            st = os.stat(path)
        except OSError:
            self.entries.pop(path, None)
            return
        if e is None:
            # Unchanged for longer than the settle time already (found by a scan after a
            # restart): no need to watch it settle again.
            age = max(0.0, time.time() - st.st_mtime)
            self.entries[path] = Entry(st.st_size, st.st_mtime_ns, now - min(age, self.settle),
                                       closed, not_before)
        elif (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
            self.entries[path] = Entry(st.st_size, st.st_mtime_ns, now, closed,
                                       max(not_before, e.not_before))
        else:
            e.closed = e.closed or closed
            e.not_before = max(e.not_before, not_before)

    def take_ready(self) -> tuple[list[Path], list[Path]]:
        """(complete files, files that vanished); both leave the pending set."""
        now = time.monotonic()
        ready, gone = [], []
        for path, e in list(self.entries.items()):
            if now < e.not_before:
                continue
            quick = self.trust_close and e.closed
            if not quick and now - e.changed < self.settle:
                continue
            try:
                st = os.stat(path)
            except OSError:
                del self.entries[path]
                gone.append(path)
                continue
            if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
                self.entries[path] = Entry(st.st_size, st.st_mtime_ns, now, False)
                continue
            if st.st_size == 0 and now - e.changed < self.settle:
                continue  # created but not yet written, even if closed once
            if open_for_writing(path):
                e.changed = now  # a writer still holds it (paused, not finished): look again
                continue
            del self.entries[path]
            ready.append(path)
        return ready, gone

    def next_due(self) -> float | None:
        """Seconds until the next entry could become ready (None when nothing is pending)."""
        if not self.entries:
            return None
        now = time.monotonic()
        due = min(max(e.not_before, e.changed + (0 if self.trust_close and e.closed
                                                 else self.settle)) for e in self.entries.values())
        return max(0.0, due - now)


def open_for_writing(path: Path) -> bool:
    """True when some process has `path` open for writing. A read lease (F_SETLEASE) is refused
    exactly then. The kernel grants leases only on the caller's own files unless it has
    CAP_LEASE (the systemd unit grants it); where the answer is unknown (another owner without
    the capability, a network file system) this says False and the settle time decides."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


class Watcher:
    """watchdog observer(s) on the roots, feeding (path, closed) pairs to a queue."""

    def __init__(self, roots: list[Path], recursive: bool, wake: Callable[[], None]) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.events: queue.SimpleQueue[tuple[Path, bool]] = queue.SimpleQueue()
        events, notify = self.events, wake

        class Handler(FileSystemEventHandler):  # runs on the observer thread
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory and event.event_type not in ("created", "moved"):
                    return
                kind = event.event_type
                if kind in ("opened", "closed_no_write"):
                    return
                # A deletion is passed on too: the daemon forgets the file (its record of
                # scored files must not grow with every image that came and went).
                target = event.dest_path if kind == "moved" else event.src_path
                if isinstance(target, bytes):
                    target = os.fsdecode(target)
                events.put((Path(target), kind == "closed" or kind == "moved"
                            or bool(event.is_directory)))
                notify()

        self.observer = Observer()
        handler = Handler()
        self.failed: list[str] = []
        for root in roots:
            try:
                self.observer.schedule(handler, str(root), recursive=recursive)
            except OSError as exc:  # inotify watch limit, vanished root: rescans still work
                self.failed.append(f"{root}: {exc.strerror or exc}")
        self.observer.daemon = True
        self.observer.start()

    def drain(self) -> list[tuple[Path, bool]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
