"""edgecrystal.stages: three stages really overlap, keep order, stay bounded, and report errors
where the caller can act on them. Real threads, real queues; the stage functions are small
stand-ins for decode/infer/write (the runner is generic: it knows nothing of images)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgecrystal.stages import StageRunner, Written

WAIT_S = 10.0  # generous: a loaded machine must not fail a test that only needs concurrency


def test_read_infer_and_write_run_at_the_same_time() -> None:
    # Each stage takes 20 ms per batch; run one after another, no two intervals would meet.
    spans: dict[str, list[tuple[float, float]]] = {"read": [], "infer": [], "write": []}

    def timed(stage: str, value: int) -> int:
        start = time.monotonic()
        time.sleep(0.02)
        spans[stage].append((start, time.monotonic()))
        return value

    def overlaps(a: str, b: str) -> int:
        return sum(1 for s1, e1 in spans[a] for s2, e2 in spans[b] if s1 < e2 and s2 < e1)

    outcomes: list[int] = []
    with StageRunner(lambda b: timed("read", b), lambda item: timed("write", item),
                     depth=1) as stages:
        stages.run_all(range(12), lambda b: timed("infer", b * 10),
                       lambda w: outcomes.append(-1 if w.outcome is None else w.outcome))
    assert outcomes == [b * 10 for b in range(12)]  # in order, nothing lost or doubled
    assert overlaps("read", "infer") >= 3, spans
    assert overlaps("write", "infer") >= 3, spans


def test_a_long_burst_keeps_only_a_few_batches_in_memory() -> None:
    # 10,000 batches of 1 MB each through a slow writer: what is decoded but not yet written
    # stays a handful of batches (the queues block), not the burst.
    alive: set[int] = set()
    most = 0
    lock = threading.Lock()

    def read(batch: int) -> tuple[int, np.ndarray]:
        nonlocal most
        with lock:
            alive.add(batch)
            most = max(most, len(alive))
        return batch, np.zeros(1 << 20, np.uint8)

    def write(item: tuple[int, np.ndarray]) -> int:
        if item[0] % 500 == 0:
            time.sleep(0.01)
        with lock:
            alive.discard(item[0])
        return item[0]

    seen: list[int] = []
    with StageRunner(read, write, depth=1) as stages:
        stages.run_all(range(10_000), lambda item: item, lambda w: seen.append(w.outcome or 0))
    assert seen == list(range(10_000))
    # depth 1: one waiting to be read + one reading + one decoded + one inferring + one waiting
    # to be written + one writing.
    assert most <= 6, most
    assert not alive


def test_a_read_error_is_raised_after_earlier_batches_are_written() -> None:
    def read(batch: int) -> int:
        if batch == 3:
            raise OSError("disk went away")
        return batch

    outcomes: list[int] = []
    with StageRunner(read, lambda item: item, depth=1) as stages, \
            pytest.raises(OSError, match="disk went away"):
        stages.run_all(range(6), lambda b: b, lambda w: outcomes.append(w.outcome or 0))
    assert outcomes[:3] == [0, 1, 2]


def test_a_write_error_reaches_the_caller_and_the_rest_goes_on() -> None:
    def write(item: int) -> int:
        if item == 2:
            raise OSError(28, "No space left on device")
        return item

    written: list[Written[int, int]] = []
    with StageRunner(lambda b: b, write, depth=2) as stages:
        stages.run_all(range(5), lambda b: b, written.append)
    assert [w.item for w in written] == [0, 1, 2, 3, 4]
    assert isinstance(written[2].error, OSError) and written[2].outcome is None
    assert [w.outcome for w in written if w.error is None] == [0, 1, 3, 4]


def test_step_by_step_wakes_the_caller_and_close_finishes_writes() -> None:
    wakes = threading.Semaphore(0)
    written_items: list[int] = []
    stages: StageRunner[int, int, int, int] = StageRunner(
        lambda b: b, lambda item: written_items.append(item) or item, depth=1,
        wake=wakes.release)
    assert stages.submit(7, block=False)
    assert not stages.busy or stages.reading == 1
    assert wakes.acquire(timeout=WAIT_S)  # the reader woke us
    decoded = stages.take_decoded(block=False)
    assert decoded is not None and decoded.value == 7 and decoded.error is None
    stages.write(70)
    assert wakes.acquire(timeout=WAIT_S)  # the writer woke us
    assert [w.outcome for w in stages.take_written()] == [70]
    assert not stages.busy
    stages.write(71)  # handed over just before close: still written
    stages.submit(8)  # not taken back: dropped (its image is still only a path)
    started = time.monotonic()
    stages.close()
    assert time.monotonic() - started < 5
    assert written_items == [70, 71]
