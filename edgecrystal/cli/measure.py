"""`edgecrystal profile` (where a model's time goes, per operator), `edgecrystal bench-daemon`
(the daemon as an imager runs it: READY, close -> result, a burst, memory, SIGTERM) and
`edgecrystal soak` (the daemon for a long while: memory, descriptors, latency over time).

Only typer and the standard library load at startup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

BACKEND_HELP = "The daemon's backend (serve's `backend`)."
PRECISION_HELP = "The daemon's precision (serve's `precision`)."


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
    app.command("bench-daemon")(bench_daemon)
    app.command("soak")(soak)


def profile(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    models: Annotated[list[str] | None, typer.Option(
        "--model", help="finder and/or classifier (repeat; default both).")] = None,
    precisions: Annotated[list[str] | None, typer.Option(
        "--precision", help="Variants to profile (repeat; default int8 and fp32).")] = None,
    batch: Annotated[int, typer.Option(help="Images per run.")] = 1,
    runs: Annotated[int, typer.Option(help="Profiled runs (after the warm-up).")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Runs left out first.")] = 3,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads (0: ORT's "
                                                     "choice).")] = 0,
    top: Annotated[int, typer.Option(min=1, help="Slowest nodes shown per model.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures "
                                                                 "here.")] = None,
) -> None:
    """Where each model's time goes in ONNX Runtime: time per operator type and the slowest
    nodes, for the files the runtime would run (docs/conversion.md)."""
    from edgecrystal.bench.op_profile import format_profile, profile_bundle

    figures = profile_bundle(bundle, models or ["finder", "classifier"],
                             precisions or ["int8", "fp32"], batch=batch, runs=runs,
                             warmup=warmup, threads=threads)
    for key, figure in figures:
        model, precision = key.split("/")
        title = f"{model} {precision} ({figure['file']}, batch {batch})"
        typer.echo(format_profile(title, figure, top) + "\n")
    if json_out is not None:
        json_out.write_text(json.dumps(dict(figures), indent=2) + "\n")


def bench_daemon(
    bundle: Annotated[Path, typer.Option(help="Model bundle folder the daemon serves.")],
    burst: Annotated[int, typer.Option(help="Images in the burst.")] = 1000,
    trickle: Annotated[int, typer.Option(help="Images for the latency test.")] = 40,
    interval: Annotated[float, typer.Option(help="Seconds between trickle images.")] = 0.25,
    size: Annotated[str, typer.Option(help="Image size WxH.")] = "320x240",
    batch: Annotated[int, typer.Option(min=1, help="The daemon's batch size.")] = 8,
    threads: Annotated[int, typer.Option(min=0, help="The daemon's threads.")] = 0,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "onnxruntime",
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "fp32",
    out: Annotated[Path, typer.Option(help="Writes OUT.json and OUT.md.")] = Path(
        "bench-daemon"),
    workdir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a new "
                                                      "temporary one).")] = None,
) -> None:
    """Benchmark `edgecrystal serve` as an imager runs it, a real daemon on real files: time to
    READY=1, file closed -> result written, a burst's throughput, memory, SIGTERM
    (docs/benchmarks.md)."""
    from edgecrystal.bench.daemon_bench import Served
    from edgecrystal.bench.daemon_bench import bench_daemon as run

    served = Served(bundle, batch=batch, threads=threads, backend=backend, precision=precision)
    typer.echo(run(served, burst=burst, trickle=trickle, interval=interval, size=size, out=out,
                   workdir=workdir))


def soak(
    bundle: Annotated[Path, typer.Option(help="Model bundle folder the daemon serves.")],
    minutes: Annotated[float, typer.Option(help="How long.")] = 30.0,
    trickle_s: Annotated[float, typer.Option(help="Seconds between trickle images.")] = 0.5,
    burst: Annotated[int, typer.Option(help="Images per burst.")] = 200,
    burst_every_s: Annotated[float, typer.Option(help="Seconds between bursts.")] = 120.0,
    sample_s: Annotated[float, typer.Option(help="Seconds per table row.")] = 30.0,
    warmup_s: Annotated[float, typer.Option(
        help="Samples before this are left out of the RSS judgement.")] = 120.0,
    size: Annotated[str, typer.Option(help="Image size WxH.")] = "640x480",
    batch: Annotated[int, typer.Option(min=1, help="The daemon's batch size.")] = 8,
    threads: Annotated[int, typer.Option(min=0, help="The daemon's threads.")] = 0,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "onnxruntime",
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "int8",
    drain_s: Annotated[float, typer.Option(
        help="At the end, wait this long for images still waiting to be scored.")] = 300.0,
    keep: Annotated[bool, typer.Option(
        help="Keep images and results (default: delete each once scored).")] = False,
    out: Annotated[Path, typer.Option(help="Writes OUT.json.")] = Path("soak"),
    workdir: Annotated[Path | None, typer.Option(help="Scratch folder (default: a new "
                                                      "temporary one).")] = None,
) -> None:
    """Soak `edgecrystal serve`: a trickle of images and a burst every few minutes for a set
    time; memory, descriptors, threads and latency per sample, and whether RSS stays flat
    after warm-up (docs/daemon.md)."""
    from edgecrystal.bench.daemon_bench import Served
    from edgecrystal.bench.soak import SoakPlan
    from edgecrystal.bench.soak import soak as run

    served = Served(bundle, batch=batch, threads=threads, backend=backend, precision=precision)
    plan = SoakPlan(minutes=minutes, trickle_s=trickle_s, burst=burst,
                    burst_every_s=burst_every_s, sample_s=sample_s, warmup_s=warmup_s,
                    size=size, drain_s=drain_s, keep=keep)
    report = run(served, plan, out, workdir, say=typer.echo)
    typer.echo(json.dumps(report["summary"]))
    typer.echo(f"wrote {out.with_suffix('.json')}")
