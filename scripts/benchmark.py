#!/usr/bin/env python3
"""The performance figures: one run measures everything docs/benchmarks.md reports.

    .venv/bin/python scripts/benchmark.py [--profiles lite,paper]
        [--parts pipeline,plate,archive,daemon,verify] [--archive-images N] [--out DIR]
    .venv/bin/python scripts/benchmark.py --render docs/benchmarks.json

Parts, per profile where they say so:
- pipeline (per profile): per image on the CPU, Keras reference vs ONNX Runtime FP32, FP16 and
  INT8 (p50, p95, ratios, stages), through `edgecrystal bench` on synthetic 1280x960 JPEG wells;
  where a GPU and TensorRT are available, the TensorRT runs as well;
- plate (per profile): a 96-well plate of 1280x960 JPEGs scored by `edgecrystal score`;
- archive (the first profile): 10,000 small JPEGs (320x240 synthetic wells by default, 96 to
  a folder) re-scored by `edgecrystal score --recursive` on 1 and 2 worker processes
  (`--workers`) and on a local Ray instance (`--ray`); each is skipped with a note where this
  edgecrystal has no such option or Ray is not installed;
- daemon (the first profile): `edgecrystal bench-daemon`: READY, file closed -> result, burst, RSS;
- verify (per profile): `edgecrystal verify` on synthetic wells: INT8 vs FP32 Dice, AUC, and
  the scores' rank correlation where verify reports it.
The paper profile runs pipeline only unless --paper-all (its plate and verify take minutes).

Profiles: `lite` (the default deployment profile: finder 256 px base 16, Inception-V3 160 px)
and `paper` (Miura et al.: U-Net 512 px base 64, Inception-V3 299 px), both untrained: latency
does not depend on the weights' values, and INT8 is calibrated on synthetic wells. Bundles and
the archive are built once into --cache and reused while the code that makes them is unchanged.

Each part's result is merged into DIR/benchmarks.json (stamped with its time and the load), so
a part can be redone alone; benchmarks.md is rendered from the whole file. The default run
takes about 20 minutes on a quiet 2-core machine (the archive about half of it), plus 10 to 15
the first time to build the bundles; the paper's needs about 14 GB of free memory (its INT8
calibration peaked at 13.9 GB RSS on 8 images, its finder's export at about 12 GB).
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark_markdown import render, upgrade

REPO = Path(__file__).resolve().parents[1]
EDGECRYSTAL = [sys.executable, "-m", "edgecrystal"]
PARTS = ("pipeline", "plate", "archive", "daemon", "verify")
PROFILES = ("lite", "paper")
ARCHIVE_WAYS = ("1", "2", "ray")
RESULT_SUFFIX = ".edgecrystal.json"
ARCHIVE_PLATE = 96  # images per folder of the archive, as on a 96-well plate
ARCHIVE_DISTINCT = 96  # distinct wells rendered; the archive repeats them under new names
# The code a cached bundle is made by: when any of it changes, the bundle is built again.
# edgecrystal/__init__.py holds PREPROCESS_VERSION, which a bundle records.
BUNDLE_CODE = ("converters", "calibration", "edgecrystal/__init__.py", "edgecrystal/models.py",
               "edgecrystal/preprocess.py", "edgecrystal/imageio.py", "edgecrystal/bundle.py",
               "edgecrystal/bundle_export.py", "scripts/benchmark_bundle.py")


@dataclass(frozen=True)
class Plan:
    """How much of each part a profile gets: the paper's models take seconds per image."""

    iterations: int
    warmup: int
    images: int
    plate_precisions: tuple[str, ...]
    calib_count: int
    verify_images: int
    # Parts left out unless --paper-all: minutes each with the paper's models on 2 cores.
    slow_parts: tuple[str, ...] = ()


PLANS = {
    "lite": Plan(iterations=60, warmup=5, images=24, plate_precisions=("fp32", "int8"),
                 calib_count=64, verify_images=32),
    # Seconds per image on 2 cores (U-Net 512 px base 64): Keras ~3.1, ORT FP32 ~2.3, INT8 ~1.7.
    # Calibration holds every activation of every image (the U-Net's at 512 px: ~1 GB per
    # image; 16 images took 17 GB), so the paper gets the fewest build-engines allows.
    "paper": Plan(iterations=6, warmup=1, images=6, plate_precisions=("int8",),
                  calib_count=8, verify_images=16, slow_parts=("plate", "verify")),
}


def main() -> int:
    args = parse_args()
    if args.soak:
        return add_soak(args.soak, args.out)
    if args.render:
        saved = upgrade(json.loads(args.render.read_text()))
        (args.out / "benchmarks.md").write_text(render(saved), encoding="utf-8")
        print(f"wrote {args.out / 'benchmarks.md'}")
        return 0
    try:
        measure(args)
    except ScoreFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_soak(soak_json: Path, out: Path) -> int:
    """Merge a `edgecrystal soak` report into benchmarks.json (a 30-minute soak is its own run)
    and re-render the page."""
    json_path = out / "benchmarks.json"
    saved = upgrade(json.loads(json_path.read_text())) if json_path.is_file() else {}
    saved["soak"] = json.loads(soak_json.read_text())
    save(saved, json_path, out)
    print(f"wrote {out / 'benchmarks.md'} and {json_path}")
    return 0


def measure(args: argparse.Namespace) -> None:
    """Every part and profile asked for; benchmarks.json and .md are saved after each."""
    json_path = args.out / "benchmarks.json"
    args.out.mkdir(parents=True, exist_ok=True)
    saved = upgrade(json.loads(json_path.read_text())) if json_path.is_file() else {}
    saved.setdefault("profiles", {})
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgecrystal-benchmark-") as tmp:
        work = Path(tmp)
        per_profile = set(args.parts) & {"pipeline", "plate", "verify"}
        # Each profile is built (or taken from the cache) just before it is measured, so that
        # the lite figures come first even where the paper's models take minutes to build.
        for name in args.profiles if per_profile else []:
            measure_profile(name, bundle_for(name, args), args, work,
                            saved["profiles"].setdefault(name, {}))
            save(saved, json_path, args.out)
        first = bundle_for(args.profiles[0], args)
        if "archive" in args.parts:
            saved["archive"] = stamped(run_archive(first, args))
            save(saved, json_path, args.out)
        if "daemon" in args.parts:
            saved["daemon"] = stamped(run_daemon_bench(first, work, args.daemon_images,
                                                       args.daemon_size))
            save(saved, json_path, args.out)
    print(f"wrote {args.out / 'benchmarks.md'} and {json_path}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--profiles", default="lite,paper",
                    help="comma-separated: lite, paper (the first also serves archive/daemon)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated: "
                    + ", ".join(PARTS))
    ap.add_argument("--bundle", type=Path, help="measure this bundle instead of building the "
                    "first profile's (under that profile's name and plan)")
    ap.add_argument("--out", type=Path, default=REPO / "docs",
                    help="where benchmarks.md/.json/.png go (default docs/)")
    ap.add_argument("--cache", type=Path, default=default_cache(),
                    help="where built bundles and the archive are kept between runs")
    ap.add_argument("--iterations", type=int, help="timed images per pipeline run (default: "
                    + ", ".join(f"{k} {v.iterations}" for k, v in PLANS.items()) + ")")
    ap.add_argument("--paper-all", action="store_true", help="also the plate and verify parts "
                    "for the paper profile (about 6 more minutes on 2 cores)")
    ap.add_argument("--archive-images", type=int, default=10_000)
    ap.add_argument("--archive-ways", default=",".join(ARCHIVE_WAYS),
                    help="comma-separated: 1 and 2 (`score --workers N`), ray (local Ray)")
    ap.add_argument("--archive-size", default="320x240", help="WxH of the archive's JPEGs")
    ap.add_argument("--daemon-images", type=int, default=1000)
    ap.add_argument("--daemon-size", default="640x480", help="WxH of the daemon burst images")
    ap.add_argument("--soak", type=Path, help="only add this `edgecrystal soak` report (its "
                                              "JSON) to benchmarks.json and re-render")
    ap.add_argument("--render", type=Path, help="only re-render benchmarks.md from this "
                                                "benchmarks.json (no measuring)")
    args = ap.parse_args()
    args.parts = split_choices(args.parts, PARTS, "--parts", ap)
    args.profiles = split_choices(args.profiles, PROFILES, "--profiles", ap)
    args.archive_ways = split_choices(args.archive_ways, ARCHIVE_WAYS, "--archive-ways", ap)
    if args.archive_images < 1:
        ap.error("--archive-images must be at least 1")
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", args.archive_size.lower()):
        ap.error(f"--archive-size: WIDTHxHEIGHT in pixels (got {args.archive_size!r})")
    return args


def split_choices(text: str, allowed: tuple[str, ...], option: str,
                  ap: argparse.ArgumentParser) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        ap.error(f"{option}: choose from {', '.join(allowed)} (got {text!r})")
    return chosen


def default_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgecrystal" / "benchmark"


def stamped(part: dict) -> dict:
    """A part's result with when it was measured and the 1-minute load average then."""
    return {**part, "measured": part.get("measured")
            or dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "load": part.get("load", os.getloadavg()[0])}


def save(saved: dict, json_path: Path, out: Path) -> None:
    """After every part, so that an interrupted run keeps what it measured."""
    json_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    (out / "benchmarks.md").write_text(render(saved), encoding="utf-8")


# ------------------------------------------------------------------------------ bundles
def bundle_for(profile: str, args: argparse.Namespace) -> Path:
    if args.bundle is not None and profile == args.profiles[0]:
        return args.bundle
    return cached_bundle(profile, args.cache)


def code_digest() -> str:
    digest = hashlib.sha256()
    for name in BUNDLE_CODE:
        path = REPO / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(REPO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def cached_bundle(profile: str, cache: Path) -> Path:
    """The profile's untrained bundle, built unless the cache holds one made by this code."""
    root = cache / f"bundle-{profile}"
    marker = root / ".benchmark-made-by"
    digest = code_digest()
    if marker.is_file() and marker.read_text().strip() == digest:
        print(f"{profile}: reusing {root}", flush=True)
        return root
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    build_bundle(profile, root, cache)
    marker.write_text(digest + "\n")
    print(f"{profile}: built {root} in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def build_bundle(profile: str, root: Path, cache: Path) -> None:
    """The profile's architectures, untrained, exported to ONNX FP32/FP16 and INT8-calibrated,
    each step in its own process (scripts/benchmark_bundle.py says why)."""
    from edgecrystal.synth import generate_dataset

    count = PLANS[profile].calib_count
    calib = cache / f"calib-{count}"
    if not (calib / "labels.csv").is_file():
        shutil.rmtree(calib, ignore_errors=True)
        generate_dataset(calib, count, seed=7, size=512)
    step = [sys.executable, str(REPO / "scripts" / "benchmark_bundle.py")]
    for cmd in ([*step, "keras", profile, str(root)],
                [*step, "export", str(root), "finder"],
                [*step, "export", str(root), "classifier"],
                [*EDGECRYSTAL, "build-engines", str(root), "--precision", "fp16"],
                [*EDGECRYSTAL, "build-engines", str(root), "--precision", "int8",
                 "--calib", str(calib), "--calib-count", str(count)]):
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


# ------------------------------------------------------------------------------ per profile
def measure_profile(name: str, bundle: Path, args: argparse.Namespace, work: Path,
                    into: dict) -> None:
    plan = PLANS[name]
    into["what"] = (f"{args.bundle}" if bundle == args.bundle else describe_profile(name))
    parts = [part for part in args.parts if args.paper_all or part not in plan.slow_parts]
    left_out = [part for part in args.parts if part in plan.slow_parts and part not in parts]
    if left_out:
        into["left_out"] = (f"{' and '.join(left_out)}: minutes each with these models on 2 "
                            "cores, left out of the default run (`--paper-all` runs them)")
    else:
        into.pop("left_out", None)
    if "pipeline" in parts:
        plot = args.out / "benchmarks.png" if name == "lite" else None
        into["pipeline"] = stamped(run_bench(bundle, work / name, plan, args.iterations, plot))
    if "plate" in parts:
        into["plate"] = stamped(score_plate(bundle, work / name, plan.plate_precisions))
    if "verify" in parts:
        into["verify"] = stamped(run_verify(bundle, work / name, args.cache,
                                            plan.verify_images))


def describe_profile(name: str) -> str:
    return {"lite": "the default deployment profile (U-Net 256 px base 16, Inception-V3 "
                    "160 px), untrained",
            "paper": "Miura et al. (U-Net 512 px base 64, Inception-V3 299 px), "
                     "untrained"}[name]


def run_bench(bundle: Path, work: Path, plan: Plan, iterations: int | None,
              plot: Path | None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "bench.json"
    cmd = [*EDGECRYSTAL, "bench", str(bundle), "--backend", "all", "--precision", "all",
           "--iterations", str(iterations or plan.iterations), "--warmup", str(plan.warmup),
           "--count", str(plan.images), "--json", str(out),
           *(["--plot", str(plot)] if plot else [])]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def score_plate(bundle: Path, work: Path, precisions: tuple[str, ...]) -> dict:
    """A whole 96-well plate through `edgecrystal score`, timed from outside the process too."""
    from edgecrystal.synth import make_plate

    runs = {}
    for precision in precisions:
        plate = work / f"plate-{precision}"
        make_plate(plate, seed=11)
        cmd = [*EDGECRYSTAL, "score", str(bundle), str(plate), "--backend", "onnxruntime",
               "--precision", precision, "--batch", "8"]
        wall, summary = timed_score(cmd)
        runs[precision] = {"images": 96, "wall_s": round(wall, 2), "summary": summary}
        print(f"plate {precision}: {wall:.1f} s", flush=True)
    return {"runs": runs}


class ScoreFailed(RuntimeError):
    """A `score` run exited non-zero; the message is its last line on stderr."""


def timed_score(cmd: list[str]) -> tuple[float, str]:
    """Run one `score`; its wall time from process start to exit and its own summary line."""
    print("+", " ".join(cmd), flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise ScoreFailed(f"score failed ({done.returncode}): "
                          f"{(done.stderr.strip().splitlines() or [''])[-1]}")
    return wall, done.stdout.strip().splitlines()[-1]


def run_verify(bundle: Path, work: Path, cache: Path, images: int) -> dict:
    """`edgecrystal verify` on synthetic wells that were not used to calibrate INT8."""
    from edgecrystal.synth import generate_dataset

    data = cache / f"verify-{images}"
    if not (data / "labels.csv").is_file():
        shutil.rmtree(data, ignore_errors=True)
        generate_dataset(data, images, seed=99, size=512)
    out = work / "verify.json"
    cmd = [*EDGECRYSTAL, "verify", str(bundle), "--data", str(data), "--n", str(images),
           "--json", str(out)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return {"data": f"{images} synthetic 512 px wells (seed 99; INT8 was calibrated on "
                    "others)", "result": json.loads(out.read_text())}


# ------------------------------------------------------------------------------ archive
def run_archive(bundle: Path, args: argparse.Namespace) -> dict:
    """Re-score one archive on 1 and 2 worker processes and on local Ray, results cleared
    before each so that every run does the same work."""
    width, height = (int(v) for v in args.archive_size.lower().split("x"))
    root = cached_archive(args.cache, args.archive_images, width, height)
    options = score_options()
    base = [*EDGECRYSTAL, "score", str(bundle), str(root), "--recursive",
            "--backend", "onnxruntime", "--precision", "int8", "--batch", "8"]
    ray_missing = module_missing("ray") if "ray" in args.archive_ways else None
    ways = {
        "1": ("1 process", ["--workers", "1"] if "--workers" in options else [], None),
        "2": ("2 worker processes", ["--workers", "2"],
              None if "--workers" in options else "this `score` has no --workers option"),
        "ray": ("local Ray", ["--ray"],
                "this `score` has no --ray option" if "--ray" not in options
                else (f"Ray is not installed ({ray_missing})" if ray_missing else None)),
    }
    runs: list[dict[str, Any]] = []
    for how, extra, skipped in (ways[way] for way in args.archive_ways):
        if skipped:
            print(f"archive, {how}: skipped: {skipped}", flush=True)
            runs.append({"how": how, "skipped": skipped})
            continue
        clear_results(root)
        try:
            wall, summary = timed_score([*base, *extra])
        except ScoreFailed as exc:  # the other ways are still worth measuring
            print(f"archive, {how}: {exc}", flush=True)
            runs.append({"how": how, "skipped": str(exc)})
            continue
        written = count_results(root)
        print(f"archive, {how}: {wall:.1f} s, {written} results", flush=True)
        runs.append({"how": how + ("" if extra else " (plain `score`)"),
                     "wall_s": round(wall, 2), "results": written, "summary": summary})
    clear_results(root)
    return {"images": args.archive_images, "precision": "int8", "runs": runs,
            "source": f"{width}x{height} synthetic JPEG wells ({ARCHIVE_DISTINCT} distinct, "
                      f"repeated under new names), {ARCHIVE_PLATE} to a folder"}


def score_options() -> str:
    """`score --help`, to see which of --workers and --ray this edgecrystal has."""
    done = subprocess.run([*EDGECRYSTAL, "score", "--help"], capture_output=True, text=True,
                          check=True, env={**os.environ, "COLUMNS": "200"})
    return done.stdout


def module_missing(name: str) -> str | None:
    """None where `name` imports in the interpreter `score` runs in, else the error's line."""
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, check=False)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


def cached_archive(cache: Path, images: int, width: int, height: int) -> Path:
    """`images` small JPEGs in folders of 96, written once and kept in the cache."""
    root = cache / f"archive-{width}x{height}-{images}"
    marker = root / ".complete"
    if marker.is_file():
        print(f"archive: reusing {root}", flush=True)
        warm_page_cache(root)
        return root
    from edgecrystal.synth import make_plate

    shutil.rmtree(root, ignore_errors=True)
    wells = make_plate(root / "distinct", seed=23, width=width, height=height,
                       count=ARCHIVE_DISTINCT)
    pool = [well.read_bytes() for well in wells]
    shutil.rmtree(root / "distinct")
    for i in range(images):
        folder = root / f"plate-{i // ARCHIVE_PLATE:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"well-{i % ARCHIVE_PLATE:02d}.jpg").write_bytes(pool[i % len(pool)])
    marker.write_text(f"{images}\n")
    print(f"archive: wrote {images} images to {root}", flush=True)
    return root


def warm_page_cache(root: Path) -> None:
    """Read every image once so that each timed run starts from the same (warm) cache."""
    for path in root.rglob("*.jpg"):
        path.read_bytes()


def is_archive_image(path: Path) -> bool:
    return re.fullmatch(r"well-\d\d\.jpg", path.name) is not None


def clear_results(root: Path) -> None:
    """Everything a run wrote into the archive (results, summaries, journals): all but the
    images, their folders and the cache's marker."""
    for top in root.iterdir():
        if top.is_dir() and top.name.startswith("plate-"):
            entries = list(top.iterdir())
        elif top.name == ".complete":
            continue
        else:
            entries = [top]
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            elif not is_archive_image(entry):
                entry.unlink()


def count_results(root: Path) -> int:
    return sum(1 for _ in root.rglob("*" + RESULT_SUFFIX))


# ------------------------------------------------------------------------------ daemon
def run_daemon_bench(bundle: Path, work: Path, images: int, size: str) -> dict:
    """`edgecrystal bench-daemon` against the same bundle: READY, close->result, burst, RSS."""
    out = work / "daemon"
    cmd = [sys.executable, "-m", "edgecrystal", "bench-daemon", "--bundle", str(bundle),
           "--burst", str(images), "--size", size, "--precision", "int8", "--out", str(out)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    report = json.loads(out.with_suffix(".json").read_text())
    report["markdown"] = out.with_suffix(".md").read_text()
    return report


if __name__ == "__main__":
    sys.exit(main())
