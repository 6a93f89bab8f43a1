"""`edgecrystal serve` as a real subprocess on real files: arrivals (flat, nested, slow,
unicode names), bad inputs, kill -9 and restart, SIGTERM, SIGHUP, sd_notify, no TensorFlow."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.results import STALE_TEMPORARY_S

RESULT = ".edgecrystal.json"


def draw_well(seed: int, w: int = 160, h: int = 120) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), int(rng.integers(60, 110)), np.uint8)
    cv2.circle(img, (w // 2, h // 2), int(min(w, h) * 0.35), tuple(int(v) for v in
               rng.integers(120, 220, 3)), -1)
    return img


def jpeg_bytes(seed: int) -> bytes:
    import cv2

    ok, enc = cv2.imencode(".jpg", draw_well(seed))
    assert ok
    return enc.tobytes()


class ServeProcess:
    """One `edgecrystal serve` process with its own NOTIFY_SOCKET and log file."""

    def __init__(self, tmp: Path, config: Path, name: str = "daemon") -> None:
        self.log_path = tmp / f"{name}.log"
        sock_path = tmp / f"{name}.notify"
        sock_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(sock_path))
        self.sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="2000000")
        env.pop("JOURNAL_STREAM", None)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecrystal", "serve", "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.messages: list[str] = []
        self.wait_for_message("READY=1", 60)

    def wait_for_message(self, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(what in m for m in self.messages):
                return
            assert self.proc.poll() is None, f"daemon died:\n{self.text()}"
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        raise AssertionError(f"no {what} from the daemon in {timeout}s:\n{self.text()}")

    def wait_for_log(self, what: str, timeout: float) -> None:
        self.wait_until(lambda: what in self.text(), timeout)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Poll `condition` until it holds; past `timeout` fail with the daemon's log."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def drain(self) -> None:
        self.sock.settimeout(0.01)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except TimeoutError:
            pass
        self.sock.settimeout(0.2)

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal, wait, and keep what the daemon said to systemd until it exited."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
            self.drain()  # the datagrams sent while stopping (STOPPING=1) are still queued
        finally:
            self.log.close()
            self.sock.close()
        return rc


def write_config(path: Path, bundle: Path, watch: Path, **extra: object) -> Path:
    values = {"bundle": str(bundle), "watch": [str(watch)], "settle_ms": 300,
              "max_batch_wait_ms": 50, "rescan_interval_s": 1.0, "batch_size": 4,
              "threads": 1, "backend": "onnxruntime", "summary_interval_s": 0.5,
              "retry_backoff_s": 0.2, **extra}
    lines = []
    for k, v in values.items():
        lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wait_results(images: list[Path], timeout: float, daemon: ServeProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(Path(f"{p}{RESULT}").exists() for p in images):
            return
        if daemon is not None:
            assert daemon.proc.poll() is None, f"daemon died:\n{daemon.text()}"
        time.sleep(0.05)
    missing = [p.name for p in images if not Path(f"{p}{RESULT}").exists()]
    log = daemon.text() if daemon else ""
    raise AssertionError(f"no result for {missing} after {timeout}s\n{log}")


def load(image: Path) -> dict:
    return json.loads(Path(f"{image}{RESULT}").read_text(encoding="utf-8"))


def scored_lines(text: str, image: Path) -> int:
    """'scored' log lines naming `image` (the daemon quotes paths that hold spaces)."""
    marks = (f"path={image} ", f'path="{image}" ')
    return sum(1 for line in text.splitlines()
               if " scored " in line and any(m in line for m in marks))


@pytest.fixture()
def plate(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_arrivals_scored_once_and_match_score(fast_bundle: Path, tmp_path: Path,
                                              plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate)
    early = plate / "A01_1.jpg"  # arrived while the daemon was down
    early.write_bytes(jpeg_bytes(1))
    d = ServeProcess(tmp_path, cfg)
    try:
        log = d.text()
        assert "heavy_modules=none" in log
        maps = Path(f"/proc/{d.proc.pid}/maps").read_text()
        assert "tensorflow" not in maps and "libtf" not in maps
        (plate / "sub" / "deeper").mkdir(parents=True)
        images = [early]
        for i, rel in enumerate(["A02_1.jpg", "sub/B03_1.jpg", "sub/deeper/C04_2.jpg",
                                 "plate ünïcode/D05 1.jpg"]):
            p = plate / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(jpeg_bytes(10 + i))
            images.append(p)
        # Written slowly, in chunks, through one open handle (an imager streaming a frame),
        # and a second one that is closed and reopened between chunks.
        slow, reopened = plate / "E06_1.jpg", plate / "sub" / "F07_1.jpg"
        data = jpeg_bytes(99)
        with open(slow, "wb") as fh:
            for i in range(0, len(data), len(data) // 4 + 1):
                fh.write(data[i : i + len(data) // 4 + 1])
                fh.flush()
                time.sleep(0.15)
        for i in range(0, len(data), len(data) // 3 + 1):
            with open(reopened, "ab") as fh:
                fh.write(data[i : i + len(data) // 3 + 1])
            time.sleep(0.1)
        images += [slow, reopened]
        wait_results(images, 60, d)
        time.sleep(1.5)  # a rescan or two: nothing may be scored again
        log = d.text()
        d.drain()
        assert any("STATUS=" in m for m in d.messages)
        assert any("WATCHDOG=1" in m for m in d.messages)
        d.messages.clear()  # what it says from here on is about stopping
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    assert "STOPPING=1" in d.messages  # systemd hears the stop before the exit
    for img in images:
        rec = load(img)
        assert rec["status"] == "ok", rec
        assert rec["image"]["size_bytes"] == img.stat().st_size
        assert scored_lines(log, img) == 1, (img, log)
    assert (plate / "edgecrystal-summary.csv").is_file()
    assert (plate / "sub" / "edgecrystal-summary.csv").is_file()

    # The same images through `edgecrystal score` give the same results.
    other = tmp_path / "copy"
    other.mkdir()
    for img in images:
        (other / img.name).write_bytes(img.read_bytes())
    out = subprocess.run([sys.executable, "-m", "edgecrystal", "score", str(fast_bundle),
                          str(other), "--backend", "onnxruntime"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for img in images:
        a, b = load(img), load(other / img.name)
        assert a["label"] == b["label"]
        assert a["drop"] == b["drop"]
        for c, p in a["scores"].items():
            assert abs(p - b["scores"][c]) < 1e-5


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_bad_inputs_get_error_results_and_daemon_stays_up(fast_bundle: Path, tmp_path: Path,
                                                          plate: Path) -> None:
    import cv2

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg_bytes(5))
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate, max_pixels=4_000_000)
    d = ServeProcess(tmp_path, cfg)
    try:
        good = jpeg_bytes(3)
        (plate / "empty.jpg").write_bytes(b"")
        (plate / "truncated.jpg").write_bytes(good[: len(good) // 2])
        (plate / "text.jpg").write_text("not an image at all\n")
        (plate / "bomb.png").write_bytes(_png_header_only(50_000, 50_000))
        cv2.imwrite(str(plate / "deep16.tif"), (draw_well(7).astype(np.uint16) * 257))
        cv2.imwrite(str(plate / "grey.png"), cv2.cvtColor(draw_well(8), cv2.COLOR_RGB2GRAY))
        (plate / "link.jpg").symlink_to(outside / "secret.jpg")
        locked = plate / "locked.jpg"
        locked.write_bytes(good)
        locked.chmod(0)
        # Deleted before scoring: held open (never closed) and removed before it settles.
        with open(plate / "gone.jpg", "wb") as fh:
            fh.write(good[:100])
            fh.flush()
            time.sleep(0.05)
            os.unlink(plate / "gone.jpg")
        expect_error = {"empty.jpg": "empty", "truncated.jpg": "truncated",
                        "text.jpg": "not_an_image", "bomb.png": "too_large"}
        expect_ok = ["deep16.tif", "grey.png"]
        wait_results([plate / n for n in [*expect_error, *expect_ok, "locked.jpg"]], 60, d)
        # And the daemon still scores good images afterwards.
        (plate / "after.jpg").write_bytes(good)
        wait_results([plate / "after.jpg"], 30, d)
        time.sleep(1.2)  # let a rescan pass over the symlink and the deleted file
        log = d.text()
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    for name, kind in expect_error.items():
        rec = load(plate / name)
        assert rec["status"] == "error" and rec["error"]["kind"] == kind, rec
        assert rec["error"]["reason"]
    for name in expect_ok:
        assert load(plate / name)["status"] == "ok"
    rec = load(plate / "locked.jpg")
    if os.geteuid() == 0:  # root reads mode-000 files: the permission check cannot bite
        assert rec["status"] == "ok"
    else:
        assert rec["error"]["kind"] == "unreadable"
    assert not Path(f"{plate / 'link.jpg'}{RESULT}").exists()
    assert "reason=symlink out of the folder" in log
    assert log.count(f"path={plate / 'link.jpg'} ") == 1  # one line, not one per rescan
    assert not Path(f"{plate / 'gone.jpg'}{RESULT}").exists()
    assert "Traceback" not in log


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_kill_9_during_burst_loses_nothing(fast_bundle: Path, tmp_path: Path,
                                           plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate)
    images = [plate / f"{chr(65 + i // 12)}{i % 12 + 1:02d}_1.jpg" for i in range(40)]
    d = ServeProcess(tmp_path, cfg, "first")
    for i, p in enumerate(images):
        p.write_bytes(jpeg_bytes(i))
    deadline = time.monotonic() + 60
    while sum(Path(f"{p}{RESULT}").exists() for p in images) < 8:
        assert time.monotonic() < deadline, d.text()
        time.sleep(0.01)
    d.proc.kill()  # SIGKILL mid-burst
    d.stop()
    first_log = d.text()
    before = {p: Path(f"{p}{RESULT}").read_text() for p in images
              if Path(f"{p}{RESULT}").exists()}
    assert 0 < len(before) < len(images), "the burst should be cut short"
    for text in before.values():
        json.loads(text)  # nothing torn
    # A kill can leave the temporary of the result being written (never a torn result): the
    # next start clears it once it is older than a live write could be. Age it, not wait.
    # One such temporary is planted too, so that the clearing is checked on every run.
    (plate / f".{images[0].name}{RESULT}.zz9plnt1.tmp").write_text("{")
    aged = time.time() - STALE_TEMPORARY_S - 1
    for debris in plate.glob(".*.tmp"):
        os.utime(debris, (aged, aged))

    d2 = ServeProcess(tmp_path, cfg, "second")
    try:
        wait_results(images, 60, d2)
        time.sleep(1.2)
        second_log = d2.text()
        assert d2.stop() == 0
    finally:
        if d2.proc.poll() is None:
            d2.proc.kill()
    leftovers = [p.name for p in plate.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    for p in images:
        load(p)
        assert scored_lines(second_log, p) == (0 if p in before else 1), p
        # Scored at most once across the kill: an image with no result after the kill was not
        # logged as scored by the first daemon either (the line comes after the write).
        assert scored_lines(first_log, p) + scored_lines(second_log, p) <= 1, p
    for p, text in before.items():  # results written before the kill were not redone
        assert Path(f"{p}{RESULT}").read_text() == text


def test_sighup_reload_keeps_old_config_when_new_one_is_bad(fast_bundle: Path, tmp_path: Path,
                                                            plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", fast_bundle, plate)
    d = ServeProcess(tmp_path, cfg)
    try:
        cfg.write_text(cfg.read_text() + "no_such_key = 1\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("keeping the old one", 20)
        (plate / "A01_1.jpg").write_bytes(jpeg_bytes(1))
        wait_results([plate / "A01_1.jpg"], 30, d)
        write_config(cfg, fast_bundle, plate, overlay=True)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("reloaded config", 30)
        (plate / "A02_1.jpg").write_bytes(jpeg_bytes(2))
        wait_results([plate / "A02_1.jpg"], 30, d)
        assert (plate / "A02_1.jpg.edgecrystal.png").is_file()
        t = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t < 10
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


def test_example_config_documents_every_key(tmp_path: Path) -> None:
    from edgecrystal.daemon.config import KEYS, load_config

    repo = Path(__file__).resolve().parents[1]
    example = (repo / "systemd" / "edgecrystal.toml").read_text()
    daemon_doc = (repo / "docs" / "daemon.md").read_text()
    for key in KEYS:
        assert f"\n{key} = " in example, key
        assert f"| `{key}` |" in daemon_doc, key
    (tmp_path / "b").mkdir()
    (tmp_path / "w").mkdir()
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(example)
    cfg = load_config(cfg_path, {"bundle": "b", "watch": ["w"]})
    assert cfg.bundle == str(tmp_path / "b") and cfg.watch == (str(tmp_path / "w"),)


def test_config_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    from edgecrystal.daemon.config import load_config
    from edgecrystal.errors import UsageError

    (tmp_path / "b").mkdir()
    cases = {'bundle = "b"\nwatch = ["b"]\nbatch_szie = 4\n': "unknown key",
             'bundle = "b"\nwatch = ["b"]\nbatch_size = "8"\n': "must be a number",
             'bundle = "b"\nwatch = ["nope"]\n': "does not exist",
             'bundle = "b"\nwatch = ["b"]\nbackend = "keras"\n': "backend must be",
             'bundle = "b"\nwatch = [\n': "not valid TOML"}
    for text, message in cases.items():
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(UsageError, match=message):
            load_config(path)
    res = subprocess.run([sys.executable, "-m", "edgecrystal", "serve", "--config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not valid TOML" in res.stderr and "Traceback" not in res.stderr
