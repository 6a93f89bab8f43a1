"""`edgecrystal score` (one-shot) and `edgecrystal serve` (the daemon).

Imports only typer and the standard library at module level: ONNX Runtime, OpenCV and numpy
load inside the commands, so `edgecrystal --help` stays instant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

BACKEND_HELP = ("auto: TensorRT where an engine for this GPU exists or can be built, else ONNX "
                "Runtime; onnxruntime; tensorrt (fail if it cannot be used).")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("serve")(serve)


def score(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder (with ONNX models).")],
    paths: Annotated[list[Path], typer.Argument(help="Image files and/or folders to score.")],
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Descend into subfolders.")] = False,
    overlay: Annotated[bool, typer.Option(
        "--overlay", help="Also write IMAGE.edgecrystal.png (drop outline, label).")] = False,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    precision: Annotated[str, typer.Option(help="Model variant: fp32, fp16 or int8.")] = "fp32",
    batch: Annotated[int, typer.Option(min=1, max=1024,
                                       help="Images per inference batch.")] = 8,
    threads: Annotated[int, typer.Option(
        min=0, help="ONNX Runtime intra-op threads (0: automatic).")] = 0,
    providers: Annotated[str, typer.Option(
        help="ONNX Runtime providers, comma-separated: cpu, cuda, tensorrt (where "
             "onnxruntime-gpu has them).")] = "cpu",
    force: Annotated[bool, typer.Option(
        "--force", help="Score again even where a matching result file exists.")] = False,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Refuse images larger than this (before decoding).")] = 64_000_000,
) -> None:
    """Score images now and write a result file beside each (IMAGE.edgecrystal.json) plus
    edgecrystal-summary.csv per folder. Images already scored with this bundle (same size and
    mtime) are skipped unless --force. Exit status: 0 when every image was scored, 1 when any
    image got an error result (unreadable, truncated, not an image...), 2 on a usage error
    (a missing path, a bad bundle or backend)."""
    import time
    from collections import Counter

    from ..bundle import Bundle
    from ..errors import UsageError
    from ..pipeline import Pipeline
    from ..results import Summaries, is_done, write_result
    from ..runtime.select import open_runners

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    images = collect_images(paths, recursive)
    if not images and not recursive:
        nested = [str(p) for p in paths if p.is_dir() and any(c.is_dir() for c in p.iterdir())]
        if nested:
            raise UsageError(f"no images directly in {', '.join(nested)} (it has subfolders: "
                             "pass --recursive to score them)")
    b = Bundle.open(bundle)
    sel = open_runners(b, backend=backend, precision=precision, threads=threads,
                       providers=[p for p in providers.split(",") if p])
    # What already has a result from exactly these models (variant hashes, backend, precision).
    fingerprint = b.runtime_fingerprint(sel.backend, precision)
    todo = images if force else [p for p in images if not is_done(p, fingerprint)]
    skipped = len(images) - len(todo)
    typer.echo(f"backend: {sel.describe()}", err=True)
    start = time.perf_counter()
    labels: Counter[str] = Counter()
    errors: list[str] = []
    summaries = Summaries(b.classes)
    with Pipeline(b, sel.finder, sel.classifier, backend=sel.backend, precision=precision,
                  max_pixels=max_pixels, outlines=overlay) as pipe:
        for i in range(0, len(todo), batch):
            for r in pipe.score(todo[i : i + batch]):
                if r.error_kind == "missing":
                    errors.append(f"{r.path}: {r.error_reason}")
                    continue  # no result file beside a file that is not there
                write_result(r, pipe.model, overlay=overlay)
                if r.ok:
                    labels[r.label or "?"] += 1
                else:
                    errors.append(f"{r.path}: {r.error_kind}: {r.error_reason}")
            typer.echo(f"scored {min(i + batch, len(todo))}/{len(todo)}", err=True)
        for folder in sorted({p.parent for p in images}):
            summaries.update(folder)
    elapsed = time.perf_counter() - start
    for line in errors:
        typer.echo(f"error: {line}", err=True)
    rate = f", {len(todo) / elapsed:.1f} images/s" if todo and elapsed > 0 else ""
    typer.echo(f"{'label':<14}{'images':>8}")
    for label in b.classes:
        typer.echo(f"{label:<14}{labels.get(label, 0):>8}")
    typer.echo(f"{'errors':<14}{len(errors):>8}")
    typer.echo(f"{'skipped':<14}{skipped:>8}  (already scored with these models)")
    typer.echo(f"{len(todo)} scored in {elapsed:.1f} s{rate}; backend {sel.backend} {precision}")
    if errors:
        raise typer.Exit(1)


def collect_images(paths: list[Path], recursive: bool) -> list[Path]:
    """Named files as given (whatever their suffix: a named file is meant to be scored); image
    files inside named folders, without edgecrystal's own outputs and temporary files."""
    from ..imageio import is_image_name
    from ..results import is_own_output

    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        if p.is_file():
            found = [p]
        elif recursive:
            found = sorted(Path(root) / name for root, _dirs, names in os.walk(p)
                           for name in names)
        else:
            found = sorted(c for c in p.iterdir() if c.is_file())
        if p.is_dir():
            found = [f for f in found
                     if is_image_name(f.name) and not is_own_output(f.name)
                     and not f.name.startswith(".")]
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out


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
        help="fp32, fp16 or int8 (overrides the config).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Score what is there (once it settles), then exit.")] = False,
) -> None:
    """Watch folders and score every new image as it arrives (the on-imager daemon; run it
    under systemd with systemd/edgecrystal.service). SIGTERM/SIGINT: finish the batch in hand
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
