"""Benchmark `edgecrystal serve` as it runs on an imager: a real daemon subprocess, real files.

Measures: time from spawn to READY=1 (through a real NOTIFY_SOCKET), latency from a file being
closed to its result file being written (p50/p95, images trickling in one at a time), throughput
during a burst of many images, the daemon's resident memory, and how long SIGTERM takes.
Writes a JSON report and a markdown snippet.

    edgecrystal bench-daemon --bundle BUNDLE --burst 1000 --out bench-daemon

`edgecrystal soak` (bench/soak.py) starts the daemon the same way (start_daemon).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgecrystal.errors import BackendError, UsageError
from edgecrystal.results import RESULT_SUFFIX as RESULT


@dataclass(frozen=True)
class Served:
    """How the daemon under test serves: its bundle and the serve settings measured."""

    bundle: Path
    batch: int = 8
    threads: int = 0
    backend: str = "onnxruntime"
    precision: str = "fp32"


def image_size(text: str) -> tuple[int, int]:
    """WxH (e.g. 640x480) as (width, height); one line when it is not that."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT, e.g. 640x480 (got {text!r})") from None
    if width < 16 or height < 16:
        raise UsageError(f"--size must be at least 16x16 (got {text!r})")
    return width, height


def make_pool(n: int, width: int, height: int) -> list[bytes]:
    """Distinct small JPEG drop pictures (a circle on a plain floor, noise)."""
    import cv2

    rng = np.random.default_rng(0)
    pool = []
    for _ in range(n):
        img = np.full((height, width, 3), int(rng.integers(60, 110)), np.uint8)
        cv2.circle(img, (width // 2, height // 2), int(min(width, height) * 0.35),
                   tuple(int(v) for v in rng.integers(120, 220, 3)), -1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        _, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        pool.append(enc.tobytes())
    return pool


def proc_status(pid: int, field: str = "VmRSS") -> int:
    """A number from /proc/PID/status (VmRSS, VmHWM in KiB; Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def write_file(path: Path, data: bytes) -> int:
    with open(path, "wb") as fh:
        fh.write(data)
    return time.time_ns()  # closed


def wait_for(paths: list[Path], timeout: float, proc: subprocess.Popen[bytes],
             peak: list[int]) -> None:
    deadline = time.monotonic() + timeout
    left = list(paths)
    while left:
        if time.monotonic() > deadline:
            raise BackendError(f"timed out waiting for {len(left)} results")
        if proc.poll() is not None:
            raise BackendError("the daemon exited during the benchmark")
        left = [p for p in left if not Path(f"{p}{RESULT}").exists()]
        peak[0] = max(peak[0], proc_status(proc.pid))
        time.sleep(0.002 if len(left) < 4 else 0.05)


def daemon_source() -> str:
    """Where the daemon's `edgecrystal` came from (`-m` puts the working folder first): what
    tells a before/after pair apart."""
    return subprocess.run([sys.executable, "-c", "import edgecrystal; print(edgecrystal.__file__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def start_daemon(served: Served, work: Path, images: Path,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], IO[bytes], float]:
    """`edgecrystal serve` on `images` as `served` says (plus `extra` config lines),
    its output into WORK/daemon.log; returns once it sent READY=1, with the seconds that took."""
    cfg = work / "serve.toml"
    cfg.write_text("\n".join([
        f"bundle = {json.dumps(str(served.bundle.resolve()))}",
        f"watch = [{json.dumps(str(images))}]",
        f"batch_size = {served.batch}", f"threads = {served.threads}",
        f"backend = {json.dumps(served.backend)}", f"precision = {json.dumps(served.precision)}",
        "max_batch_wait_ms = 20", "rescan_interval_s = 30.0", "summary_interval_s = 5.0",
        *extra,
    ]) + "\n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(work / "notify.sock"))
    sock.settimeout(120)
    env = dict(os.environ, NOTIFY_SOCKET=str(work / "notify.sock"))
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "edgecrystal", "serve", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    while b"READY=1" not in sock.recv(4096):
        pass
    ready_s = time.monotonic() - started
    sock.close()  # the daemon's later notifications go nowhere, which it tolerates
    return proc, log, ready_s


def bench_daemon(served: Served, *, burst: int = 1000, trickle: int = 40, interval: float = 0.25,
                 size: str = "320x240", out: Path = Path("bench-daemon"),
                 workdir: Path | None = None) -> str:
    """Run the benchmark; writes OUT.json (the figures) and OUT.md (the table), returns the
    table."""
    width, height = image_size(size)
    if burst < 1 or trickle < 1:
        raise UsageError("--burst and --trickle must be at least 1")
    pool = make_pool(32, width, height)
    work = Path(workdir or tempfile.mkdtemp(prefix="edgecrystal-bench-"))
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    proc, log, ready_s = start_daemon(served, work, images)
    rss_ready = proc_status(proc.pid)
    peak = [rss_ready]

    latencies = []
    trickle_dir = images / "trickle"
    trickle_dir.mkdir()
    time.sleep(0.5)
    for i in range(trickle):
        p = trickle_dir / f"T{i:04d}.jpg"
        closed = write_file(p, pool[i % len(pool)])
        wait_for([p], 60, proc, peak)
        latencies.append((Path(f"{p}{RESULT}").stat().st_mtime_ns - closed) / 1e6)
        time.sleep(interval)

    burst_dir = images / "burst"
    burst_dir.mkdir()
    paths = [burst_dir / f"{chr(65 + (i // 48) % 26)}{i % 48 + 1:02d}_{i}.jpg"
             for i in range(burst)]
    first_close = time.time_ns()
    for i, p in enumerate(paths):
        write_file(p, pool[i % len(pool)])
    last_close = time.time_ns()
    wait_for(paths, 3600, proc, peak)
    last_result = max(Path(f"{p}{RESULT}").stat().st_mtime_ns for p in paths)
    burst_s = (last_result - first_close) / 1e9
    burst_lat = sorted((Path(f"{p}{RESULT}").stat().st_mtime_ns - first_close) / 1e6
                       for p in paths)
    hwm = proc_status(proc.pid, "VmHWM")
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    stop_s = time.monotonic() - t
    log.close()
    text = (work / "daemon.log").read_text(errors="replace")
    statuses = [json.loads(Path(f"{p}{RESULT}").read_text())["status"] for p in paths]
    heavy = [ln.split("heavy_modules=")[1].split()[0] for ln in text.splitlines()
             if "heavy_modules=" in ln]
    report: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version()},
        "bundle": str(served.bundle), "backend": served.backend, "precision": served.precision,
        "image_size": f"{width}x{height} JPEG (~{statistics.mean(map(len, pool)) / 1024:.0f} KiB)",
        "batch_size": served.batch, "threads": served.threads,
        "ready_s": round(ready_s, 3),
        "latency_ms": {"n": len(latencies), "p50": round(pct(latencies, 50), 1),
                       "p95": round(pct(latencies, 95), 1), "max": round(max(latencies), 1)},
        "burst": {"images": burst, "write_s": round((last_close - first_close) / 1e9, 3),
                  "all_scored_s": round(burst_s, 3),
                  "images_per_s": round(burst / burst_s, 1),
                  "p50_done_ms": round(pct(burst_lat, 50), 1),
                  "ok": statuses.count("ok"), "errors": len(statuses) - statuses.count("ok")},
        "rss_mb": {"at_ready": round(rss_ready / 1024, 1), "peak": round(max(peak[0], hwm) / 1024,
                                                                          1)},
        "sigterm": {"exit_code": rc, "stop_s": round(stop_s, 3)},
        "heavy_modules": heavy[0] if heavy else "?",
        "daemon_source": daemon_source(),
        "scored_log_lines": text.count(" scored "),
        "command": " ".join(["edgecrystal", *sys.argv[1:]]),
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    md = "\n".join([
        "| metric | value |", "|---|---|",
        f"| machine | {report['machine']['cpu']}, {report['machine']['cores']} cores |",
        f"| backend | {served.backend} {served.precision}, batch {served.batch}, "
        f"threads {served.threads or 'auto'} |",
        f"| images | {report['image_size']} |",
        f"| time to READY=1 | {report['ready_s']:.2f} s |",
        f"| file closed -> result written (trickle, n={len(latencies)}) | p50 "
        f"{report['latency_ms']['p50']:.0f} ms, p95 {report['latency_ms']['p95']:.0f} ms |",
        f"| burst of {burst} | {report['burst']['images_per_s']:.1f} images/s "
        f"(all scored {report['burst']['all_scored_s']:.1f} s after the first was closed) |",
        f"| daemon RSS | {report['rss_mb']['at_ready']:.0f} MiB at READY, peak "
        f"{report['rss_mb']['peak']:.0f} MiB |",
        f"| SIGTERM | exit {rc} after {stop_s:.2f} s |",
        f"| heavy modules loaded | {report['heavy_modules']} |",
    ]) + "\n"
    out.with_suffix(".md").write_text(md)
    return md
