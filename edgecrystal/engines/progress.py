"""Engine builds a user can watch: a line when a build starts, one every `every` seconds while
TensorRT works (a first build on an Orin takes minutes with no output of its own), and one with
the elapsed time when it ends. `build-engines` prints the lines, the daemon logs them and sends
them to systemd as STATUS= (so `systemctl status edgecrystal` shows the build), both through the
same `engines.store.engine_for`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

Report = Callable[[str], None]
EVERY_S = 15.0


def log_report(line: str) -> None:
    log.info("%s", line)


@contextmanager
def watched(what: str, report: Report | None = None, every: float = EVERY_S) -> Iterator[None]:
    """Report `what` starting, still running every `every` seconds, and done (or failed) with
    the elapsed seconds. `report` is called from a helper thread for the 'still' lines."""
    say = report or log_report
    start = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            say(f"still building {what}: {time.monotonic() - start:.0f} s")

    say(f"building {what} ...")
    ticker = threading.Thread(target=tick, name="build-progress", daemon=True)
    ticker.start()
    try:
        yield
    except BaseException:
        done.set()
        ticker.join()
        say(f"building {what} failed after {time.monotonic() - start:.1f} s")
        raise
    done.set()
    ticker.join()
    say(f"built {what} in {time.monotonic() - start:.1f} s")
