"""The daemon's overlapped burst path (decode next, infer this, write last: docs/daemon.md) keeps
its guarantees: a real `edgecrystal serve` subprocess, real files, the fast ONNX fixtures.

- kill -9 mid-burst: every image ends with exactly one complete result after a restart;
- an image rewritten under the same name while queued or in flight: its final result vouches for
  the bytes now there;
- a full disk (a real, small tmpfs): writes fail, are retried, and nothing is lost or doubled,
  also when the disk was full before the daemon started;
- SIGHUP mid-burst: every result names the bundle that really scored it; a broken new bundle is
  refused and the old one kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import build_fast_bundle
from test_daemon import (
    RESULT,
    ServeProcess,
    jpeg_bytes,
    load,
    scored_lines,
    wait_results,
    write_config,
)

from edgecrystal import DEFAULT_CLASSES

# Bursts of 48-60 images through a real daemon, several times per test: the slow tier's (the
# fast tier keeps the daemon's single-batch guarantees in test_daemon.py).
pytestmark = pytest.mark.slow


def names(count: int, start: int = 0) -> list[str]:
    return [f"{chr(65 + i // 12)}{i % 12 + 1:02d}_1.jpg" for i in range(start, start + count)]


def vouches_for_bytes(image: Path) -> bool:
    """The result matches the file now there: size, mtime and the hash of its bytes."""
    try:
        record = load(image)
    except (OSError, ValueError):
        return False
    st = image.stat()
    facts = record["image"]
    return (facts["size_bytes"] == st.st_size and facts["mtime_ns"] == st.st_mtime_ns
            and facts["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest())


def results_count(images: list[Path]) -> int:
    return sum(Path(f"{p}{RESULT}").exists() for p in images)


def test_kill_9_mid_burst_with_overlap_every_image_one_complete_result(
        fast_bundle: Path, tmp_path: Path) -> None:
    plate = tmp_path / "images"
    plate.mkdir()
    # Depth 2 and small batches: many batches in flight (decoding, inferring, writing) at the kill.
    # Rescans every 0.3 s during the burst: an image in flight must not be queued again.
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, queue_depth=2, batch_size=2,
                       settle_ms=100, rescan_interval_s=0.3)
    images = [plate / name for name in names(60)]
    first = ServeProcess(tmp_path, cfg, "first")
    for i, p in enumerate(images):
        p.write_bytes(jpeg_bytes(i))
    first.wait_until(lambda: results_count(images) >= 10, 60)
    first.proc.kill()
    first.stop()
    before = {p: Path(f"{p}{RESULT}").read_text() for p in images
              if Path(f"{p}{RESULT}").exists()}
    assert 0 < len(before) < len(images), "the burst should be cut short"
    for text in before.values():
        json.loads(text)  # nothing torn

    second = ServeProcess(tmp_path, cfg, "second")
    try:
        wait_results(images, 60, second)
        time.sleep(1.0)  # a duplicate would show up as a second 'scored' line by now
        assert second.stop() == 0
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    first_log, second_log = first.text(), second.text()
    for p in images:
        assert vouches_for_bytes(p), p
        # Exactly one scoring overall: a result written just before the kill may have no log
        # line (the kill fell between the write and its booking), never a second scoring.
        assert scored_lines(first_log, p) + scored_lines(second_log, p) <= 1, p
        assert scored_lines(second_log, p) == (0 if p in before else 1), p
    for p, text in before.items():  # results written before the kill were not redone
        assert Path(f"{p}{RESULT}").read_text() == text


def test_images_rewritten_while_queued_or_in_flight_get_results_for_their_new_bytes(
        fast_bundle: Path, tmp_path: Path) -> None:
    plate = tmp_path / "images"
    plate.mkdir()
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, queue_depth=2, batch_size=4,
                       settle_ms=100, rescan_interval_s=0.3)
    images = [plate / name for name in names(48)]
    daemon = ServeProcess(tmp_path, cfg)
    try:
        for i, p in enumerate(images):
            p.write_bytes(jpeg_bytes(i))
        daemon.wait_until(lambda: results_count(images) >= 4, 60)
        rewritten = images[4::3]  # some queued, some in flight, some maybe done already
        for i, p in enumerate(rewritten):
            p.write_bytes(jpeg_bytes(1000 + i))
        daemon.wait_until(lambda: all(vouches_for_bytes(p) for p in images), 60)
        time.sleep(1.0)
        assert all(vouches_for_bytes(p) for p in images)  # and it stays that way
        log = daemon.text()
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    for p in images:
        # An image is scored once per content it had while the daemon saw it.
        assert 1 <= scored_lines(log, p) <= (2 if p in rewritten else 1), p


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    mount_point = Path(tempfile.mkdtemp(prefix="edgecrystal-full-"))
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(mount_point)], capture_output=True)
    if made.returncode != 0:
        mount_point.rmdir()
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def fill(folder: Path) -> Path:
    """Take every free byte of the file system under `folder`; returns the filler to delete."""
    filler = folder / "filler.bin"
    with contextlib.suppress(OSError), open(filler, "wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def test_full_disk_results_are_retried_and_none_lost_or_doubled(fast_bundle: Path,
                                                                 tmp_path: Path) -> None:
    with small_tmpfs("2m") as plate:
        cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, queue_depth=2,
                           batch_size=2, settle_ms=100, retry_backoff_s=0.5, retry_max=20,
                           summary=False, index="off", recursive=False)
        # Images wait in a subfolder the daemon does not watch, the daemon takes its lock, the
        # disk fills, then the images are renamed in (a rename needs no free space).
        staging = plate / "staging"
        staging.mkdir()
        images = [plate / name for name in names(12)]
        for i, p in enumerate(images):
            (staging / p.name).write_bytes(jpeg_bytes(i))
        daemon = ServeProcess(tmp_path, cfg)
        filler = fill(plate)
        for p in images:
            (staging / p.name).rename(p)
        _catch_up_once_space_is_back(daemon, images, filler)
        assert not [p.name for p in plate.iterdir() if p.name.endswith(".tmp")]


def test_sighup_mid_burst_results_name_the_bundle_that_scored_them(
        fast_bundle: Path, tmp_path: Path) -> None:
    from edgecrystal.session import open_pipeline

    # Bundle B: the same graphs with the classes in reverse order, so every score lands under
    # another class name: a result with A's record and B's scores (or the reverse) shows up.
    bundle_a = fast_bundle
    bundle_b = build_fast_bundle(tmp_path / "bundle-b", tuple(reversed(DEFAULT_CLASSES)))
    broken = tmp_path / "bundle-broken"
    shutil.copytree(bundle_b, broken)
    with open(broken / "onnx" / "classifier.fp32.onnx", "ab") as out:
        out.write(b"not what bundle.json hashed")
    plate = tmp_path / "images"
    plate.mkdir()
    cfg = write_config(tmp_path / "serve.toml", bundle_a, plate, queue_depth=2, batch_size=2,
                       settle_ms=100)
    images = [plate / name for name in names(150)]
    late = [plate / name for name in names(6, start=150)]
    # Every version of every result file seen while the daemon works: B rescores what A
    # scored (a new fingerprint), so the files at the end alone would not show A's results.
    seen: set[tuple[Path, str]] = set()

    def snapshot() -> None:
        for p in images + late:
            with contextlib.suppress(OSError):
                seen.add((p, Path(f"{p}{RESULT}").read_text()))

    def logged(what: str) -> bool:
        snapshot()
        return what in daemon.text()

    daemon = ServeProcess(tmp_path, cfg)
    try:
        for i, p in enumerate(images):
            p.write_bytes(jpeg_bytes(i))
        daemon.wait_until(lambda: snapshot() or results_count(images) >= 6, 60)
        write_config(cfg, bundle_b, plate, queue_depth=2, batch_size=2, settle_ms=100)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_until(lambda: logged("reloaded config"), 60)
        write_config(cfg, broken, plate, queue_depth=2, batch_size=2, settle_ms=100)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_until(lambda: logged("cannot open the bundle, keeping the old one"), 60)
        for i, p in enumerate(late):
            p.write_bytes(jpeg_bytes(500 + i))
        daemon.wait_until(lambda: logged("") and all(
            load(p)["model"]["bundle"] == str(bundle_b.resolve())
            for p in images + late if Path(f"{p}{RESULT}").exists())
            and results_count(images + late) == len(images + late), 120)
        snapshot()
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()

    expected: dict[str, dict[Path, dict[str, float]]] = {}
    fingerprints = {}
    for root in (bundle_a, bundle_b):
        with open_pipeline(root, backend="onnxruntime", precision="fp32",
                           threads=1) as pipeline:
            fingerprints[str(root.resolve())] = pipeline.model.fingerprint
            expected[pipeline.model.fingerprint] = {
                r.path: r.scores for r in pipeline.score(images + late)}
    used = []
    for p, text in sorted(seen):
        record = json.loads(text)  # never torn
        model = record["model"]
        assert fingerprints[model["bundle"]] == model["fingerprint"], p
        want = expected[model["fingerprint"]][p]
        assert record["scores"].keys() == want.keys(), p
        assert np.allclose([record["scores"][c] for c in want], list(want.values()),
                           atol=1e-5), p
        used.append(model["bundle"])
    assert used.count(str(bundle_a.resolve())) >= 6, "A scored the start of the burst"
    assert used.count(str(bundle_b.resolve())) >= len(images + late), "B scored them all again"
    # The broken bundle was refused: the images after it were scored by B.
    assert {load(p)["model"]["bundle"] for p in late} == {str(bundle_b.resolve())}


def test_a_daemon_started_on_a_full_disk_waits_and_catches_up(fast_bundle: Path,
                                                              tmp_path: Path) -> None:
    """The disk is full before the daemon starts (its lock file's pid cannot be written): it
    starts all the same, retries the results it cannot write, and writes them all once there is
    space again, none lost or doubled."""
    with small_tmpfs("2m") as plate:
        cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, queue_depth=2,
                           batch_size=2, settle_ms=100, retry_backoff_s=0.5, retry_max=20,
                           summary=False, index="off", recursive=False)
        images = [plate / name for name in names(8)]
        for i, p in enumerate(images):
            p.write_bytes(jpeg_bytes(i))
        filler = fill(plate)
        daemon = ServeProcess(tmp_path, cfg)  # READY=1, or the test fails with its log
        log = _catch_up_once_space_is_back(daemon, images, filler)
        assert "pid could not be written" in log and "Traceback" not in log


def test_sighup_reloads_between_batches_not_after_the_backlog(fast_bundle: Path,
                                                             tmp_path: Path) -> None:
    """With a backlog queued, SIGHUP is answered after the batches already in hand, not after
    every queued image was scored with the old bundle (seen: 1,192 of 1,200)."""
    plate = tmp_path / "images"
    plate.mkdir()
    images = [plate / f"{chr(65 + i // 24 % 16)}{i % 24 + 1:02d}_{i // 384 + 1}.jpg"
              for i in range(240)]
    for i, p in enumerate(images):
        p.write_bytes(jpeg_bytes(i))
    depth, batch = 2, 2
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, queue_depth=depth,
                       batch_size=batch, settle_ms=100, summary=False, index="off")
    daemon = ServeProcess(tmp_path, cfg)
    try:
        daemon.wait_until(lambda: results_count(images) >= 4, 60)
        at_signal = sum(" scored " in line for line in daemon.text().splitlines())
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_log("reloaded config", 120)
        lines = daemon.text().splitlines()
        reloaded = next(i for i, line in enumerate(lines) if "reloaded config" in line)
        before_reload = sum(" scored " in line for line in lines[:reloaded])
        wait_results(images, 120, daemon)
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    # Between the signal and the reload: the batches already handed to the stages, which the
    # old bundle finishes (reading: 2 x depth + 1, writing: depth + 1, the one being inferred),
    # and a batch of slack for the log read before the signal: 20 images, not the rest of 240.
    stages_hold = (2 * depth + 1) + (depth + 1) + 1
    assert before_reload - at_signal <= (stages_hold + 1) * batch, (at_signal, before_reload)


def _catch_up_once_space_is_back(daemon: ServeProcess, images: list[Path], filler: Path) -> str:
    """On a full disk: no result gets through; once `filler` is gone the retries write every
    image's result exactly once, whole. Returns the daemon's log; the daemon is stopped."""
    try:
        daemon.wait_for_log("cannot write result", 60)
        assert results_count(images) == 0
        filler.unlink()  # space again: the retries get through
        wait_results(images, 60, daemon)
        time.sleep(1.0)
        log = daemon.text()
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    for p in images:
        assert vouches_for_bytes(p), p
        assert scored_lines(log, p) == 1, p
    return log
