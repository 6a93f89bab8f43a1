"""The daemon's file closed -> result p50 with and without a crystal model (issue 25: within
10 %), from `edgecrystal bench-daemon` runs alternating the two bundles in one session, so
both see the same machine load over the same minutes.

Usage: python scripts/daemon_crystal_ratio.py WITHOUT_BUNDLE WITH_BUNDLE [--pairs 6]
       [--trickle 40] [--interval 0.25] [--threads 1] [--out DIR]

WITH_BUNDLE should be WITHOUT_BUNDLE plus a crystal model (same finder, classifier, precision).
Prints each run's p50, the median p50 of each bundle and the ratio of the medians (with / without);
writes every run's report to DIR (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def p50(bundle: Path, out: Path, args: argparse.Namespace) -> float:
    """One bench-daemon run: its trickle's file closed -> result written p50 (ms)."""
    subprocess.run([sys.executable, "-m", "edgecrystal", "bench-daemon", "--bundle", str(bundle),
                    "--burst", "40", "--trickle", str(args.trickle), "--interval",
                    str(args.interval), "--threads", str(args.threads), "--out", str(out)],
                   check=True, capture_output=True, text=True)
    report = json.loads(out.with_suffix(".json").read_text())
    return float(report["latency_ms"]["p50"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("without", type=Path)
    parser.add_argument("with_crystals", type=Path)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--trickle", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="daemon-crystal-ratio-"))
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for k in range(args.pairs):
        for name, bundle in (("without", args.without), ("with", args.with_crystals)):
            runs[name].append(p50(bundle, out / f"{name}-{k + 1}", args))
            print(f"pair {k + 1} {name} crystal model: p50 {runs[name][-1]:.1f} ms", flush=True)
    without, with_ = statistics.median(runs["without"]), statistics.median(runs["with"])
    print(f"median p50 without {without:.1f} ms, with {with_:.1f} ms: ratio "
          f"{with_ / without:.3f} (target <= 1.10); reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
