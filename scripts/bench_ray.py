#!/usr/bin/env python3
"""Archive throughput: `edgecrystal score` in one process against `score --ray` on a local Ray
instance, on the same images, interleaved round by round (the order alternates), so a loaded
machine weighs on both alike.

    .venv/bin/python scripts/bench_ray.py --bundle BUNDLE --images 300 --size 640x480 \\
        --precision int8 --rounds 2 --cpus 2

Each run scores every image (--force) from a fresh process. Reports, per configuration, the wall
time from process start to exit and score's own images/s (from the first batch to the last
result, without start-up), plus the load average before and after. Ray is started once here
(start_local_ray(num_cpus=--cpus): listening on 127.0.0.1 only, all traffic on loopback) and
joined by address, so its start-up (seconds) is reported once,
apart. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EDGECRYSTAL = [sys.executable, "-m", "edgecrystal", "score"]
OWN_LINE = re.compile(r"(\d+) scored in ([\d.]+) s, ([\d.]+) images/s")


def write_images(folder: Path, count: int, width: int, height: int) -> None:
    """Distinct JPEG wells: a lighter disc (the drop) on a plain floor, with noise."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(count):
        image = np.full((height, width, 3), int(rng.integers(50, 90)), np.uint8)
        centre = (int(width * rng.uniform(0.4, 0.6)), int(height * rng.uniform(0.4, 0.6)))
        colour = tuple(int(v) for v in rng.integers(140, 220, 3))
        cv2.circle(image, centre, int(min(width, height) * rng.uniform(0.25, 0.4)), colour, -1)
        noisy = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"P{number // 96:04d}_{number % 96:02d}.jpg"), noisy,
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def run_score(arguments: list[str]) -> tuple[float, float]:
    """(wall seconds, score's own images/s) of one run."""
    start = time.perf_counter()
    done = subprocess.run([*EDGECRYSTAL, *arguments], capture_output=True, text=True,
                          timeout=3600)
    wall = time.perf_counter() - start
    match = OWN_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"score failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, float(match.group(3))


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", default="640x480", help="WxH")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray instance gets")
    args = parser.parse_args()
    import ray

    from edgecrystal.scale.loopback import start_local_ray

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as work:
        images = Path(work) / "archive"
        write_images(images, args.images, width, height)
        started = time.perf_counter()
        start_local_ray(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        address = ray.get_runtime_context().gcs_address
        common = [str(args.bundle), str(images), "--force", "--backend", "onnxruntime",
                  "--precision", args.precision, "--batch", str(args.batch)]
        configurations = {
            "score, 1 process (threads auto)": common,
            f"score --ray, {args.cpus} workers x 1 CPU": [*common, "--ray", address],
            f"score --ray, 1 worker x {args.cpus} CPUs": [*common, "--threads", str(args.cpus),
                                                          "--ray", address],
        }
        before = load()
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in configurations}
        for round_number in range(args.rounds):
            order = list(configurations)
            if round_number % 2:
                order.reverse()
            for name in order:
                runs[name].append(run_score(configurations[name]))
                print(f"round {round_number + 1} {name}: wall {runs[name][-1][0]:.1f} s, "
                      f"{runs[name][-1][1]:.1f} images/s (load {load()})", flush=True)
        after = load()
        ray.shutdown()
    print(f"\n{args.images} images {args.size} JPEG, {args.precision}, batch {args.batch}, "
          f"{args.rounds} round(s) interleaved; Ray start {ray_start:.1f} s; "
          f"load average before {before}, after {after}\n")
    print("| configuration | wall s (median) | images/s, score's line (median) | vs 1 process |")
    print("|---|---|---|---|")
    baseline = statistics.median(rate for _, rate in runs[next(iter(configurations))])
    for name, measured in runs.items():
        wall = statistics.median(w for w, _ in measured)
        rate = statistics.median(r for _, r in measured)
        print(f"| {name} | {wall:.1f} | {rate:.1f} | {rate / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
