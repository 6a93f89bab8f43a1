"""What systemd hears from the daemon (sd_notify): READY/RELOADING/STOPPING, a STATUS line and
the watchdog pings (WatchdogSec), which must keep coming during long work (a burst, an engine
build after SIGHUP)."""

from __future__ import annotations

import logging
import time

from .sdnotify import Notifier, watchdog_interval

log = logging.getLogger(__name__)


class Health:
    def __init__(self) -> None:
        self.notifier = Notifier()
        self.ping_every: float | None = watchdog_interval()
        self.next_ping = 0.0

    def ping(self) -> None:
        if self.ping_every and time.monotonic() >= self.next_ping:
            self.notifier.watchdog()
            self.next_ping = time.monotonic() + self.ping_every

    def due_in(self) -> float | None:
        """Seconds until the next watchdog ping is due (None: no watchdog)."""
        if not self.ping_every:
            return None
        return max(0.0, self.next_ping - time.monotonic())

    def build_progress(self, line: str) -> None:
        """An engine build's progress: in the log, and in `systemctl status` (STATUS=) while
        the daemon is not yet READY=1 (a first build on an Orin takes minutes). Each line also
        pings the watchdog: a build after SIGHUP (new bundle, precision or dla_core) runs
        while the watchdog is armed, and takes longer than WatchdogSec on an Orin; the
        progress lines come every 15 s from the build's own thread while it runs."""
        log.info("%s", line)
        self.notifier.status(line)
        self.ping()

    def status(self, text: str) -> None:
        self.notifier.status(text)

    def ready(self, status: str) -> None:
        self.notifier.ready(status)

    def reloading(self) -> None:
        self.notifier.reloading()

    def stopping(self) -> None:
        self.notifier.stopping()
        self.notifier.status("stopping")

    def close(self) -> None:
        self.notifier.close()
