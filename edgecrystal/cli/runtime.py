"""`edgecrystal score` (one-shot) and `edgecrystal serve` (the daemon).

Imports only typer and the standard library at module level: ONNX Runtime, OpenCV and numpy
load inside the commands, so `edgecrystal --help` stays instant."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

# `score --ray` with no address: Typer options cannot take an optional value, so `main` puts
# this one in where `--ray` ends the line or another option follows it.
RAY_LOCAL = "local"

BACKEND_HELP = ("auto: TensorRT where an engine for this GPU exists or can be built, else ONNX "
                "Runtime; onnxruntime; tensorrt (fail if it cannot be used).")


def ray_address_filled(args: list[str]) -> list[str]:
    """`args` with RAY_LOCAL after a `--ray` that has no value (`score ... --ray`)."""
    filled = list(args)
    for place in reversed(range(len(filled))):
        if filled[place] == "--ray" and (place + 1 == len(filled)
                                         or filled[place + 1].startswith("-")):
            filled.insert(place + 1, RAY_LOCAL)
    return filled


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("serve")(serve)


def score(
    bundle: Annotated[Path, typer.Argument(
        help="Model bundle folder (with ONNX models); leave it out to use the shipped default "
             "bundle (edgecrystal models path bundle).")],
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Image files and/or folders to score.")] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Descend into subfolders.")] = False,
    overlay: Annotated[bool, typer.Option(
        "--overlay", help="Also write IMAGE.edgecrystal.png (drop outline, label).")] = False,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    precision: Annotated[str, typer.Option(help="Model variant: fp32, fp16 or int8.")] = "fp32",
    batch: Annotated[int, typer.Option(min=1, max=1024,
                                       help="Images per inference batch.")] = 8,
    threads: Annotated[int, typer.Option(
        min=0, help="ONNX Runtime intra-op threads per worker (0: automatic; with --workers, "
                    "the cores shared out).")] = 0,
    workers: Annotated[int, typer.Option(
        min=1, max=256, help="Processes to split the images over, each with its own "
                             "pipeline (archives).")] = 1,
    providers: Annotated[str, typer.Option(
        help="ONNX Runtime providers, comma-separated: cpu, cuda, tensorrt (where "
             "onnxruntime-gpu has them).")] = "cpu",
    force: Annotated[bool, typer.Option(
        "--force", help="Score again even where a matching result file exists.")] = False,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Refuse images larger than this (before decoding).")] = 64_000_000,
    index: Annotated[str | None, typer.Option(
        "--index", help="Also put every result into this index: sqlite:///FILE or "
                        "postgresql://USER@HOST/DB (docs/review.md).")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="Spread the work over a Ray cluster: no value (put --ray after the paths) or "
             "'local' starts (or joins) one on this machine; 'auto' or HOST:PORT joins a "
             "running one. Needs the ray extra and the images, bundle and results on storage "
             "every node sees (docs/daemon.md).",
    )] = None,
) -> None:
    """Score images now and write a result file beside each (IMAGE.edgecrystal.json) plus
    edgecrystal-summary.csv per folder. Images already scored with this bundle (same size and
    mtime) are skipped unless --force. Exit status: 0 when every image was scored, 1 when any
    image got an error result (unreadable, truncated, not an image...), 2 on a usage error
    (a missing path, a bad bundle or backend)."""
    from ..scoring import ScoreOptions, bundle_and_paths, score_paths

    bundle, paths = bundle_and_paths(bundle, paths or [])
    options = ScoreOptions(recursive=recursive, overlay=overlay, backend=backend,
                           precision=precision, batch=batch, threads=threads,
                           providers=tuple(p for p in providers.split(",") if p), force=force,
                           max_pixels=max_pixels, index=index, workers=workers)
    say = partial(typer.echo, err=True)
    if ray is not None and workers > 1:
        from ..errors import UsageError

        raise UsageError("--workers and --ray do not go together: Ray spreads the images itself")
    if ray is None:
        report = score_paths(bundle, paths, options, progress=say)
    else:
        from ..scale.ray_score import score_paths_on_ray

        report = score_paths_on_ray(bundle, paths, options, ray, progress=say)
    for line in report.errors:
        typer.echo(f"error: {line}", err=True)
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)
    if report.useless:
        typer.echo(f"warning: {report.useless}", err=True)
    rate = report.images_per_second
    typer.echo(f"{'label':<14}{'images':>8}")
    for label in report.classes:
        typer.echo(f"{label:<14}{report.labels.get(label, 0):>8}")
    typer.echo(f"{'crystals hits':<14}{report.marks['crystals_hit']:>8}  (the bundle's "
               "crystals threshold)")
    typer.echo(f"{'uncertain':<14}{report.marks['uncertain']:>8}  (the review page's queue)")
    typer.echo(f"{'errors':<14}{len(report.errors):>8}")
    if report.no_drop:  # drop.found false: the whole image was classified
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(report.no_drop.items()))
        typer.echo(f"{'no drop':<14}{sum(report.no_drop.values()):>8}  (whole image "
                   f"classified: {why})")
    if report.warnings:
        typer.echo(f"{'warnings':<14}{len(report.warnings):>8}  (scored; see the result files)")
    typer.echo(f"{'skipped':<14}{report.skipped:>8}  (already scored with these models)")
    typer.echo(f"{report.scored} scored in {report.elapsed_s:.1f} s"
               f"{f', {rate:.1f} images/s' if rate else ''}; "
               f"backend {report.backend} {report.precision}")
    if report.errors:
        raise typer.Exit(1)


def serve(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML config (see systemd/edgecrystal.toml).")] = None,
    bundle: Annotated[Path | None, typer.Option(
        help="Model bundle (overrides the config).")] = None,
    watch: Annotated[list[Path] | None, typer.Option(
        "--watch", help="Folder to watch (repeatable; overrides the config).")] = None,
    backend: Annotated[str | None, typer.Option(
        help=BACKEND_HELP + " Overrides the config.")] = None,
    precision: Annotated[str | None, typer.Option(
        help="fp32, fp16, int8 or auto (overrides the config; auto: int8 where it passed the "
             "accuracy gate on this CPU and is faster here).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Score what is there (once it settles), then exit.")] = False,
) -> None:
    """Watch folders and score every new image as it arrives (the on-imager daemon; run it
    under systemd with systemd/edgecrystal.service). SIGTERM/SIGINT: finish the batches in flight
    and exit 0; SIGHUP: reload the config and bundle. See docs/daemon.md."""
    from ..daemon.service import run_daemon

    overrides: dict[str, object] = {}
    if bundle is not None:
        overrides["bundle"] = str(bundle)
    if watch:
        overrides["watch"] = [str(w) for w in watch]
    if backend is not None:
        overrides["backend"] = backend
    if precision is not None:
        overrides["precision"] = precision
    raise typer.Exit(run_daemon(config, overrides, once=once))
