"""Latency statistics: the arithmetic of a report, kept apart so tests can check it exactly."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 90, 95, 99)
# Above this coefficient of variation a latency figure is called unstable (trtexec warns at 1 %
# of throughput variance on a quiet GPU; a shared CPU is noisier, so the bar is higher here).
UNSTABLE_CV = 0.10


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), without numpy."""
    if not samples:
        raise ValueError("percentile of no samples")
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """min / max / mean / median / p90 / p95 / p99 / std / cv of latencies in milliseconds."""
    n = len(samples_ms)
    if n == 0:
        raise ValueError("no timings to summarize")
    mean = sum(samples_ms) / n
    var = sum((x - mean) ** 2 for x in samples_ms) / n
    std = math.sqrt(var)
    out = {
        "count": float(n),
        "min": min(samples_ms),
        "max": max(samples_ms),
        "mean": mean,
        "median": percentile(samples_ms, 50),
    }
    for q in PERCENTILES[1:]:
        out[f"p{q}"] = percentile(samples_ms, q)
    out["std"] = std
    out["cv"] = std / mean if mean > 0 else 0.0
    return out


def throughput(images: int, wall_seconds: float) -> float:
    """Images per second over a wall-clock span."""
    if wall_seconds <= 0:
        raise ValueError("wall time must be positive")
    return images / wall_seconds


def ratio(baseline_ms: float, candidate_ms: float) -> float:
    """How many times faster the candidate is than the baseline (>1 means faster)."""
    if candidate_ms <= 0:
        raise ValueError("candidate latency must be positive")
    return baseline_ms / candidate_ms
