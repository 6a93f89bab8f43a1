"""Running a benchmark: the real pipeline (read, finder, crop, classifier, write) per backend.

Each run scores the same images through the same `Pipeline` the daemon uses, and writes the same
result files, into a scratch copy of the images (a benchmark never writes beside a user's
pictures). The Keras reference runs in the same process and the same loop, so every ratio is
measured against a baseline taken in the same run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..errors import EdgeCrystalError, UsageError
from ..interface import PRECISIONS, REFERENCE_BACKEND, RUNTIME_BACKENDS
from ..pipeline import Pipeline
from .report import MODEL_STAGES, STAGES, RunTimings

ALL_BACKENDS = (REFERENCE_BACKEND, *RUNTIME_BACKENDS)
ALL_PRECISIONS = PRECISIONS
DEFAULT_SYNTHETIC = 24

# `log` is the progress callback the command passes; this logger is its default.
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    backends: tuple[str, ...] = ALL_BACKENDS
    precisions: tuple[str, ...] = ALL_PRECISIONS
    batch: int = 1
    iterations: int = 30
    warmup: int = 3
    threads: int = 0
    images: Path | None = None
    synthetic: int = DEFAULT_SYNTHETIC
    # Models on DLA cores for the TensorRT backends: (("finder", 0),) (bench --dla finder=0).
    dla: tuple[tuple[str, int], ...] = ()


def prepare_images(cfg: BenchConfig, workdir: Path) -> tuple[list[Path], str]:
    """Copy the user's images (or synthesize a plate of 1280x960 JPEGs) into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.images is not None:
        if not cfg.images.is_dir():
            raise UsageError(f"--images {cfg.images} is not a folder")
        from ..discovery import collect_images

        # The same choice `score` makes in a folder: images, never our outputs or temporaries.
        found = collect_images([cfg.images], recursive=True)
        if not found:
            raise UsageError(f"--images {cfg.images} holds no JPEG/PNG/BMP/TIFF images")
        readable = _readable(found, max(cfg.synthetic, cfg.batch))
        if not readable:
            raise UsageError(f"--images {cfg.images}: none of its {len(found)} images could be "
                             f"read (first: {_why_unreadable(found[0])})")
        copies = []
        for i, src in enumerate(readable):
            dst = workdir / f"{i:04d}_{src.name}"
            shutil.copyfile(src, dst)
            copies.append(dst)
        return copies, f"{len(copies)} images from {cfg.images}"
    from ..synth import make_plate

    paths = make_plate(workdir, seed=0, count=max(cfg.synthetic, cfg.batch))
    return list(paths), f"{len(paths)} synthetic 1280x960 JPEG wells"


def _readable(images: list[Path], wanted: int) -> list[Path]:
    """The first `wanted` images that decode: a run of files that all fail has nothing to time."""
    readable = []
    for path in images:
        if _why_unreadable(path) is None:
            readable.append(path)
            if len(readable) == wanted:
                break
    return readable


def _why_unreadable(path: Path) -> str | None:
    """None when `path` decodes, else "path: reason" as a result file would give it."""
    from ..errors import ImageError
    from ..imageio import load_picture

    try:
        picture = load_picture(path)
        picture.pixels(picture.reductions[-1])  # the cheapest decode that reads the data
    except ImageError as exc:
        return f"{path.name}: {exc.reason}"
    return None


def run_bench(bundle_path: Path, cfg: BenchConfig,
              log: Callable[[str], None] | None = None) -> tuple[list[RunTimings], dict[str, Any]]:
    """Measure every backend/precision asked for that can run here; say why others are skipped."""
    log = log or logger.info
    bundle = Bundle.open(bundle_path)
    bundle.check_preprocess()
    skipped: list[str] = []
    runs: list[RunTimings] = []
    flops = model_flops(bundle, count_with_keras="keras" in cfg.backends)
    with tempfile.TemporaryDirectory(prefix="edgecrystal-bench-") as tmp:
        images, source = prepare_images(cfg, Path(tmp))
        for backend, precision in _combinations(cfg):
            try:
                pipeline = _open(bundle, backend, precision, cfg.threads, dict(cfg.dla))
            except (EdgeCrystalError, ImportError) as exc:
                skipped.append(f"{backend}/{precision}: {exc}")
                log(f"skip {backend}/{precision}: {exc}")
                continue
            with pipeline:
                log(f"bench {backend}/{precision}: {cfg.warmup} warm-up + {cfg.iterations} "
                    f"timed batches of {cfg.batch}; {_where(pipeline)}")
                run = _measure(pipeline, images, cfg)
            run.backend, run.precision, run.flops = backend, precision, flops
            runs.append(run)
    meta = {"images": source, "skipped": skipped, "batch": cfg.batch, "dla": dict(cfg.dla),
            "iterations": cfg.iterations, "warmup": cfg.warmup, "threads": cfg.threads,
            "bundle": str(bundle.root.resolve()), "fingerprint": bundle.fingerprint,
            "classes": bundle.classes}
    return runs, meta


def measure(bundle_path: Path, cfg: BenchConfig,
            log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[RunTimings]]:
    """run_bench, then the machine's FP32 peak and the assembled report (JSON-ready)."""
    log = log or logger.info
    from . import machine
    from .report import build_report

    runs, meta = run_bench(bundle_path, cfg, log)
    if not runs:
        raise UsageError("no backend could run here: " + "; ".join(meta["skipped"]))
    log("measuring this CPU's FP32 and INT8 matrix-multiply peaks...")
    peak_int8 = (machine.measure_cpu_int8_peak_gops()
                 if any(run.precision == "int8" for run in runs) else None)
    report = build_report(runs, machine=machine.describe(),
                          peak_gflops=machine.measure_cpu_peak_gflops(), config=meta,
                          peak_gops_int8=peak_int8)
    report["advice"] = cpu_advice(Bundle.open(bundle_path), runs)
    return report, runs


def cpu_advice(bundle: Bundle, runs: list[RunTimings]) -> dict[str, str]:
    """The precision this machine should run on the CPU (runtime/advice.py's rule) from the
    ONNX Runtime runs' median end-to-end times."""
    from .. import cpu_isa
    from ..runtime.advice import advise, int8_refusal
    from .stats import summarize

    medians = {run.precision: summarize(run.end_to_end_ms)["median"] for run in runs
               if run.backend == "onnxruntime"}
    # The models scoring runs (the crystal model too, where the bundle runs one).
    advice = advise(medians.get("fp32"), medians.get("int8"),
                    int8_refusal(bundle, bundle.runtime_models()))
    return {"precision": advice.precision, "reason": advice.reason,
            "cpu_family": cpu_isa.detect().family}


def _combinations(cfg: BenchConfig) -> list[tuple[str, str]]:
    combos = []
    for backend in cfg.backends:
        if backend not in ALL_BACKENDS:
            raise UsageError(f"unknown backend {backend!r}: choose from {', '.join(ALL_BACKENDS)}")
        # Keras is the FP32 reference only.
        for precision in (("fp32",) if backend == "keras" else cfg.precisions):
            if precision not in ALL_PRECISIONS:
                raise UsageError(f"unknown precision {precision!r}: choose from "
                                 f"{', '.join(ALL_PRECISIONS)}")
            combos.append((backend, precision))
    return combos


def _runners(pipeline: Pipeline) -> list[tuple[str, Any]]:
    """The pipeline's model runners by name; the crystal model's where the bundle has one."""
    return [("finder", pipeline.finder), ("classifier", pipeline.classifier),
            ("crystals", pipeline.crystals)]


def _where(pipeline: Pipeline) -> str:
    """What runs each model and where (a DLA engine names its core and layer placement)."""
    return "; ".join(f"{name} {runner.describe()}" for name, runner in _runners(pipeline)
                     if runner)


def _open(bundle: Bundle, backend: str, precision: str, threads: int,
          dla: dict[str, int] | None = None) -> Pipeline:
    from .. import keras_backend
    from ..session import open_pipeline

    keras_backend.plug()  # the reference: one more backend of the session
    pipeline = open_pipeline(bundle, backend=backend, precision=precision, threads=threads,
                             allow_build=False, dla=dla)
    selection = pipeline.selection
    assert selection is not None  # open_pipeline always records it
    problem = (f"{backend} is not usable here" if selection.backend != backend
               # timing FP32 under an INT8 label would mislead
               else f"int8 not run: {selection.fallback}" if selection.fallback else None)
    try:
        if problem:
            raise UsageError(problem)
        pipeline.activate()  # loaded before any timing; a missing Keras is a skip line
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def _measure(pipeline: Pipeline, images: list[Path], cfg: BenchConfig) -> RunTimings:
    from ..results import write_result

    def batches(count: int, start: int) -> list[list[Path]]:
        out, i = [], start
        for _ in range(count):
            out.append([images[(i + k) % len(images)] for k in range(cfg.batch)])
            i += cfg.batch
        return out

    for batch in batches(cfg.warmup, 0):
        pipeline.score(batch)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    gpu: dict[str, list[float]] = {"h2d": [], "compute": [], "d2h": []}
    e2e: list[float] = []
    errors = 0
    wall0 = time.perf_counter()
    for batch in batches(cfg.iterations, cfg.warmup * cfg.batch):
        t0 = time.perf_counter()
        scored = pipeline.score(batch)
        for s in scored:
            tw = time.perf_counter()
            write_result(s, pipeline.model)
            s.timings_ms["write"] = (time.perf_counter() - tw) * 1000.0
        per_image = (time.perf_counter() - t0) * 1000.0 / len(batch)
        for s in scored:
            if not s.ok:
                errors += 1
                continue
            e2e.append(per_image)
            for stage in STAGES:
                if stage in s.timings_ms:  # "crystals" only where the bundle has that model
                    stages[stage].append(float(s.timings_ms[stage]))
        _collect_gpu(pipeline, gpu, len(batch))
    wall = time.perf_counter() - wall0
    note = f"{errors} images failed to decode and were left out" if errors else ""
    return RunTimings("", "", cfg.batch, wall, stages, e2e,
                      gpu_ms={k: v for k, v in gpu.items() if v}, note=note)


def _collect_gpu(pipeline: Pipeline, gpu: dict[str, list[float]], n: int) -> None:
    """Sum the TensorRT runners' CUDA-event timings of the last batch, per image."""
    totals = {"h2d": 0.0, "compute": 0.0, "d2h": 0.0}
    seen = False
    for _name, runner in _runners(pipeline):
        timings = getattr(runner, "last_timings", None)
        if timings:
            seen = True
            for key in totals:
                totals[key] += float(timings.get(f"{key}_ms", 0.0))
    if seen:
        for key, value in totals.items():
            gpu[key].append(value / n)


def model_flops(bundle: Bundle, count_with_keras: bool) -> dict[str, int]:
    """FLOPs per image of each model: from bundle.json (training records them), else counted
    from the Keras file, but only when the Keras reference runs anyway: a bench of the runtime
    backends never loads TensorFlow. Without either, the floor is left out of the report."""
    flops: dict[str, int] = {}
    for model in MODEL_STAGES:
        if not bundle.has(model):
            continue
        sec = bundle.section(model)
        if sec.get("flops"):
            flops[model] = int(sec["flops"])
            continue
        if not count_with_keras:
            continue
        try:
            from ..models import count_flops, load_model

            flops[model] = count_flops(load_model(bundle.model_file(model)))
        except (ImportError, EdgeCrystalError):
            continue
    return flops
