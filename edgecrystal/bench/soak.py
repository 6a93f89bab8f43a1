"""Soak `edgecrystal serve`: a steady trickle of images plus a burst every few minutes into a
served folder, for a set time. A real daemon subprocess, real files.

Every --sample-s seconds it records the daemon's resident memory, open file descriptors and
threads, and the percentiles of close -> result latency (the result file's mtime minus the
moment the image was closed) for the trickle images and the burst images closed in that
interval. Prints a table as it goes and writes OUT.json: what "RSS flat after warm-up" is judged
from.

    edgecrystal soak --bundle BUNDLE --minutes 30 --out soak
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecrystal.errors import BackendError, UsageError
from edgecrystal.results import RESULT_SUFFIX as RESULT

from .daemon_bench import Served, image_size, make_pool, proc_status, start_daemon, write_file


@dataclass
class Sent:
    path: Path
    closed_ns: int
    kind: str  # "trickle" | "burst"


@dataclass
class Interval:
    """What happened between two samples."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"trickle": [],
                                                                        "burst": []})
    closed: int = 0
    results: int = 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 1) if values else None


def collect(outstanding: list[Sent], interval: Interval, delete: bool) -> list[Sent]:
    """Book the images whose result has appeared; returns those still waiting."""
    waiting = []
    for sent in outstanding:
        result = Path(f"{sent.path}{RESULT}")
        try:
            written_ns = result.stat().st_mtime_ns
        except FileNotFoundError:
            waiting.append(sent)
            continue
        interval.latencies[sent.kind].append((written_ns - sent.closed_ns) / 1e6)
        interval.results += 1
        if delete:  # keeps the disk bounded over a long soak; the daemon forgets nothing
            sent.path.unlink(missing_ok=True)
            result.unlink(missing_ok=True)
    return waiting


def sample(proc: subprocess.Popen[bytes], started: float, interval: Interval,
           backlog: int) -> dict[str, object]:
    row: dict[str, object] = {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mib": round(proc_status(proc.pid, "VmRSS") / 1024, 1),
        "fds": open_fds(proc.pid),
        "threads": proc_status(proc.pid, "Threads"),
        "closed": interval.closed, "results": interval.results, "backlog": backlog,
    }
    for kind, values in interval.latencies.items():
        row[kind] = {"n": len(values), "p50_ms": percentile(values, 50),
                     "p95_ms": percentile(values, 95), "p99_ms": percentile(values, 99),
                     "max_ms": round(max(values), 1) if values else None}
    return row


HEADER = (f"{'t_s':>7}{'rss_MiB':>9}{'fds':>5}{'thr':>5}{'closed':>7}{'result':>7}"
          f"{'backlog':>8}  {'trickle p50/p95/max ms':>20}  {'burst p50/p95/max ms':>20}")


def format_row(row: dict[str, object]) -> str:
    def lat(kind: str) -> str:
        stats = row[kind]
        assert isinstance(stats, dict)
        if not stats["n"]:
            return f"{'-':>20}"
        return f"{stats['p50_ms']:>6.0f}{stats['p95_ms']:>7.0f}{stats['max_ms']:>7.0f}"

    return (f"{row['t_s']:>7}{row['rss_mib']:>9}{row['fds']:>5}{row['threads']:>5}"
            f"{row['closed']:>7}{row['results']:>7}{row['backlog']:>8}  {lat('trickle')}  "
            f"{lat('burst')}")


def summarise(rows: list[dict[str, object]], warmup_s: float) -> dict[str, object]:
    steady = [r for r in rows if float(r["t_s"]) >= warmup_s]  # type: ignore[arg-type]
    if len(steady) < 2:
        return {"note": "too short to judge: fewer than two samples after warm-up"}
    rss = np.asarray([float(r["rss_mib"]) for r in steady])  # type: ignore[arg-type]
    times = np.asarray([float(r["t_s"]) for r in steady]) / 60.0  # type: ignore[arg-type]
    slope = float(np.polyfit(times, rss, 1)[0])
    fds = [int(r["fds"]) for r in steady]  # type: ignore[call-overload]
    return {"after_warmup_s": warmup_s, "samples": len(steady),
            "rss_mib": {"first": float(rss[0]), "last": float(rss[-1]), "min": float(rss.min()),
                        "max": float(rss.max()), "slope_mib_per_min": round(slope, 3)},
            "fds": {"min": min(fds), "max": max(fds)}}


@dataclass(frozen=True)
class SoakPlan:
    """What arrives and for how long (seconds unless named otherwise)."""

    minutes: float = 30.0
    trickle_s: float = 0.5
    burst: int = 200
    burst_every_s: float = 120.0
    sample_s: float = 30.0
    warmup_s: float = 120.0
    size: str = "640x480"
    drain_s: float = 300.0
    keep: bool = False


def soak(served: Served, plan: SoakPlan, out: Path, workdir: Path | None = None,
         say: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Run the soak; `say` gets the header and one table row per sample as they come. Writes
    OUT.json and returns the report."""
    width, height = image_size(plan.size)
    if min(plan.minutes, plan.trickle_s, plan.sample_s, plan.burst_every_s) <= 0 or plan.burst < 0:
        raise UsageError("--minutes, --trickle-s, --sample-s and --burst-every-s must be above "
                         "0, --burst 0 or more")
    pool = make_pool(32, width, height)
    work = Path(workdir or tempfile.mkdtemp(prefix="edgecrystal-soak-"))
    images = work / "images"
    (images / "trickle").mkdir(parents=True, exist_ok=True)
    proc, _log, _ = start_daemon(served, work, images, extra=('index = "off"',))
    started = time.monotonic()
    end = started + plan.minutes * 60
    say(f"daemon pid {proc.pid}, work {work}; {plan.minutes} min: one image every "
        f"{plan.trickle_s} s, {plan.burst} every {plan.burst_every_s} s")
    say(HEADER)
    rows: list[dict[str, object]] = []
    outstanding: list[Sent] = []
    interval = Interval()
    count = 0
    next_trickle, next_burst = started, started + plan.burst_every_s / 2
    next_sample = started + plan.sample_s
    try:
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise BackendError(f"the daemon exited (code {proc.returncode}): see "
                                   f"{work / 'daemon.log'}")
            now = time.monotonic()
            if now >= next_trickle:
                path = images / "trickle" / f"T{count:06d}.jpg"
                outstanding.append(Sent(path, write_file(path, pool[count % len(pool)]),
                                        "trickle"))
                count += 1
                interval.closed += 1
                next_trickle += plan.trickle_s
            if now >= next_burst:
                folder = images / f"burst{count:06d}"
                folder.mkdir()
                for i in range(plan.burst):
                    path = folder / f"{chr(65 + (i // 12) % 8)}{i % 12 + 1:02d}_{i}.jpg"
                    outstanding.append(Sent(path, write_file(path, pool[i % len(pool)]),
                                            "burst"))
                count += plan.burst
                interval.closed += plan.burst
                next_burst += plan.burst_every_s
            outstanding = collect(outstanding, interval, delete=not plan.keep)
            if now >= next_sample:
                rows.append(sample(proc, started, interval, len(outstanding)))
                say(format_row(rows[-1]))
                interval = Interval()
                next_sample += plan.sample_s
            time.sleep(0.01)
        # The last burst may still be in hand: wait for it (a daemon that loses images shows
        # here as unscored_at_end), then count it in one last row.
        drain_until = time.monotonic() + plan.drain_s
        while outstanding and time.monotonic() < drain_until and proc.poll() is None:
            outstanding = collect(outstanding, interval, delete=not plan.keep)
            time.sleep(0.05)
        rows.append(sample(proc, started, interval, len(outstanding)))
        say(format_row(rows[-1]))
    finally:
        proc.terminate()
        code = proc.wait(60)
    report = {"command": " ".join(["edgecrystal", *sys.argv[1:]]),
              "bundle": str(served.bundle), "backend": served.backend,
              "precision": served.precision,
              "image_size": plan.size, "minutes": plan.minutes, "trickle_s": plan.trickle_s,
              "burst": plan.burst, "burst_every_s": plan.burst_every_s, "images": count,
              "unscored_at_end": len(outstanding), "sigterm_exit": code,
              "cores": os.cpu_count(), "load_avg": os.getloadavg(), "samples": rows,
              "summary": summarise(rows, plan.warmup_s)}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report
