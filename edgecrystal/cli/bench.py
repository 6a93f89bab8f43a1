"""`edgecrystal bench` (latency reports) and `edgecrystal demo` (the whole chain, README command 1).

Only typer and the standard library load at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("bench")(bench)
    app.command("demo")(demo)


def _split(values: list[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Repeated or comma-separated choices; 'all' means every allowed value."""
    items = [v.strip() for raw in (values or ["all"]) for v in raw.split(",") if v.strip()]
    if "all" in items:
        return allowed
    bad = [v for v in items if v not in allowed]
    if bad:
        raise UsageError(f"unknown {what} {', '.join(bad)}: choose from {', '.join(allowed)}, all")
    return tuple(dict.fromkeys(items))


def _dla_cores(values: list[str] | None) -> tuple[tuple[str, int], ...]:
    """['finder=0'] -> (('finder', 0),); anything else is a one-line UsageError."""
    from ..bundle import MODELS

    cores: dict[str, int] = {}
    for value in values or []:
        model, _, core = value.partition("=")
        if model not in MODELS or not core.isdigit():
            raise UsageError(f"--dla {value}: give MODEL=CORE, MODEL {', '.join(MODELS)}, "
                             "CORE 0 or 1 (e.g. --dla finder=0)")
        cores[model] = int(core)
    return tuple(sorted(cores.items()))


def bench(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    backend: Annotated[list[str] | None, typer.Option(
        help="keras, onnxruntime, onnxruntime-trt, tensorrt or all (repeat or "
             "comma-separate). Keras is the "
             "reference every ratio is measured against; backends that cannot run here are "
             "skipped with the reason.")] = None,
    precision: Annotated[list[str] | None, typer.Option(
        help="fp32, fp16, int8 or all (repeat or comma-separate).")] = None,
    batch: Annotated[int, typer.Option(min=1, max=256, help="Images per batch.")] = 1,
    iterations: Annotated[int, typer.Option(min=1, help="Timed batches per run.")] = 30,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed batches first.")] = 3,
    images: Annotated[Path | None, typer.Option(
        help="Folder of real images to use (copied to a scratch folder; nothing is written "
             "beside them). Default: synthetic 1280x960 JPEG wells.")] = None,
    count: Annotated[int, typer.Option(min=1, help="How many distinct images to cycle "
                                                   "through.")] = 24,
    threads: Annotated[int, typer.Option(min=0, help="ONNX Runtime intra-op threads "
                                                     "(0: all cores).")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report "
                                                                 "here.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of latency "
                                                                 "distributions here.")] = None,
    dla: Annotated[list[str] | None, typer.Option(
        help="MODEL=CORE: run that model's TensorRT engine on a DLA core (repeatable), e.g. "
             "--dla finder=0 (finder, classifier or crystals); the engine must have been built "
             "with build-engines --dla-core.")] = None,
) -> None:
    """Latency and throughput per stage and end to end, for several backends and precisions
    side by side, shaped like trtexec's performance summary."""
    from ..atomic import write_json
    from ..bench.report import format_table, plot
    from ..bench.run import ALL_BACKENDS, ALL_PRECISIONS, BenchConfig, measure

    for out in (json_out, plot_out):
        if out is not None and out.is_dir():
            raise UsageError(f"{out} is a folder; give a file name")
    cfg = BenchConfig(backends=_split(backend, ALL_BACKENDS, "backend"),
                      precisions=_split(precision, ALL_PRECISIONS, "precision"),
                      batch=batch, iterations=iterations, warmup=warmup, threads=threads,
                      images=images, synthetic=count, dla=_dla_cores(dla))
    report, runs = measure(bundle, cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(format_table(report))
    for line in report["config"]["skipped"]:
        typer.echo(f"[I] skipped {line}")
    advice = report["advice"]
    typer.echo(f"[I] this machine ({advice['cpu_family']}) should run {advice['reason']}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_out, report)
        typer.echo(f"JSON report: {json_out}")
    if plot_out is not None:
        plot_out.parent.mkdir(parents=True, exist_ok=True)
        if plot(report, runs, plot_out):
            typer.echo(f"plot: {plot_out}")
        else:
            typer.echo("[I] no plot: matplotlib is not installed (pip install matplotlib)")


def demo(
    workdir: Annotated[Path, typer.Option(help="Where everything is written.")] = Path(
        "edgecrystal-demo"),
    images: Annotated[int, typer.Option(min=40, help="Synthetic training images.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Start again in a workdir that "
                                                        "already holds a demo.")] = False,
) -> None:
    """The whole chain on the embedded synthetic default: synthesize, take the shipped finder,
    train the classifier on its crops, evaluate, export to ONNX, calibrate INT8, build engines
    where there is a GPU, score a plate as the daemon would, and a bench summary."""
    from ..demo import run_demo

    run_demo(workdir, n_images=images, seed=seed, force=force)
