"""The daemon's signal part on its own, with real signals to this process: a handler only sets
its flag, and the loop sleeping on the self-pipe wakes at once (not at its timeout)."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from edgecrystal.daemon.signals import SignalFlags

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture()
def flags() -> Iterator[SignalFlags]:
    saved = {s: signal.getsignal(s) for s in HANDLED}
    flags = SignalFlags()
    flags.install()
    try:
        yield flags
    finally:
        signal.set_wakeup_fd(-1)
        faulthandler.unregister(signal.SIGUSR1)
        for s, handler in saved.items():
            signal.signal(s, handler)
        flags.close()


def _sleep_until_signalled(flags: SignalFlags, signum: int) -> float:
    threading.Timer(0.1, os.kill, (os.getpid(), signum)).start()
    started = time.monotonic()
    flags.sleep(20)
    return time.monotonic() - started


def test_sighup_wakes_the_loop_and_asks_for_one_reload(flags: SignalFlags) -> None:
    assert _sleep_until_signalled(flags, signal.SIGHUP) < 10
    assert flags.raised and not flags.stop
    assert flags.take_reload()
    assert not flags.take_reload() and not flags.raised


def test_sigterm_wakes_the_loop_and_asks_it_to_stop(flags: SignalFlags) -> None:
    assert _sleep_until_signalled(flags, signal.SIGTERM) < 10
    assert flags.stop and not flags.reload


def test_another_thread_wakes_the_loop(flags: SignalFlags) -> None:
    threading.Timer(0.1, flags.wake).start()
    started = time.monotonic()
    flags.sleep(20)
    assert time.monotonic() - started < 10
    assert not flags.raised
