"""Signals and wake-ups, as in gunicorn's arbiter: a handler only sets a flag, and the
interpreter writes the signal number to a self-pipe (set_wakeup_fd), so the loop sleeping in
select() on that pipe wakes at once. Threads (the inotify observer, the stage threads) wake the
loop through the same pipe. Everything else happens in the loop, on the main thread."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import select
import signal
from types import FrameType


class SignalFlags:
    def __init__(self) -> None:
        self.stop = False  # SIGTERM, SIGINT: finish what is in hand, then exit
        self.reload = False  # SIGHUP: read the config again and swap the bundle
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def install(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.stop = True

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self.reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        # SIGUSR1 dumps every thread's stack to the log: how to see where a stuck daemon is.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    @property
    def raised(self) -> bool:
        """A stop or a reload is waiting for the loop: long work gives way between batches."""
        return self.stop or self.reload

    def take_reload(self) -> bool:
        """True once per SIGHUP (however many came since the last look)."""
        asked, self.reload = self.reload, False
        return asked

    def wake(self) -> None:  # called from other threads
        # A full pipe means the loop is being woken anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def sleep(self, timeout: float) -> None:
        """Until a signal, a wake() or `timeout` seconds, whichever comes first."""
        try:
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)
