"""Data commands: `edgecrystal synth` (make a synthetic data set or plate) and
`edgecrystal data check` (find what is wrong with a data set before training on it).

Only typer and the standard library are imported here at startup; numpy/OpenCV load inside
the commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

DEFAULT_N = 400
data_app = typer.Typer(name="data", help="Inspect data sets.", no_args_is_help=True)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _prepare_out(out: Path, force: bool) -> None:
    """Refuse to write into a file or into a folder that already holds files (unless --force);
    a missing folder, parents included, is created."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is a file; give a folder to write into")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} is not empty; choose a new folder or pass --force "
                         "to write into it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write (created if missing).")],
    n: Annotated[int | None, typer.Option(
        "--n", help="Number of images (default 400); with --plate the number of wells, "
        "A01 onwards (default all 96; more continue with rows I, J, ...).")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="Random seed: same seed and options, same bytes.")] = 0,
    size: Annotated[int, typer.Option(
        "--size", help="Image side in pixels (data set images are square; --plate writes "
        "1280x960 like MARCO).")] = 512,
    max_size: Annotated[int | None, typer.Option(
        "--max-size", help="With --size: the longer side is drawn from --size..--max-size per "
        "image.")] = None,
    max_aspect: Annotated[float, typer.Option(
        "--max-aspect", help="Images up to this much wider (or taller) than high, e.g. 1.333 "
        "for 4:3 (default 1: square).")] = 1.0,
    empty_fraction: Annotated[float, typer.Option(
        "--empty-fraction", help="Style random: this share of wells hold no drop (empty mask, "
        "no label), so a finder learns to answer 'no drop'.")] = 0.0,
    closeup_fraction: Annotated[float, typer.Option(
        "--closeup-fraction", help="This share of wells are close-ups: the drop filling the "
        "frame, as a zoomed imager shows it (where the drop is large enough; labels.csv's "
        "`view` says which).")] = 0.0,
    classes: Annotated[str, typer.Option(
        "--classes", help="Comma-separated classes to draw (any subset).")
    ] = "clear,crystals,precipitate,other",
    style: Annotated[list[str] | None, typer.Option(
        "--style", help="Imager style, repeatable: marco, formulatrix, brightfield, minstrel, "
        "or random (every image its own look and scene: the finder's training data; "
        "default: the four imagers, balanced; with --plate: one, picked by the seed).")] = None,
    plate: Annotated[bool, typer.Option(
        "--plate", help="Write one plate imaging instead: A01_1.jpg .. H12_1.jpg (1280x960 "
        "JPEG) plus truth.csv.")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes (0: one per core, at most 4).")] = 0,
    force: Annotated[bool, typer.Option(
        "--force", help="Write into a folder that already holds files.")] = False,
) -> None:
    """Generate synthetic crystallization-drop images with drop masks and labels."""
    from ..synth import check_classes, check_styles

    names = check_classes(_split(classes) or [])
    styles = check_styles(style or None)
    if n is None:
        n = 96 if plate else DEFAULT_N
    if n <= 0:
        raise UsageError(f"--n must be at least 1 (got {n})")
    if size < 64 or size > 4096:
        raise UsageError(f"--size must be between 64 and 4096 pixels (got {size})")
    if max_size is not None and not size <= max_size <= 4096:
        raise UsageError(f"--max-size must be between --size ({size}) and 4096 (got {max_size})")
    _prepare_out(out, force)
    start = time.perf_counter()
    if plate:
        from ..synth import make_plate
        from ..synth.plate import TRUTH_FILE

        if len(styles) > 1 and style:
            raise UsageError("--plate takes one --style (a plate is imaged by one imager)")
        paths = make_plate(out, seed=seed, style=style[0] if style else None, classes=names,
                           count=n, workers=workers or None, progress=True)
        typer.echo(f"wrote {len(paths)} well images and {TRUTH_FILE} to {out} "
                   f"in {time.perf_counter() - start:.1f} s")
        return
    from ..synth import generate_dataset

    sizes = size if max_size is None else (size, max_size)
    ds = generate_dataset(out, n, seed=seed, size=sizes, classes=names, styles=styles,
                          progress=True, workers=workers or None, max_aspect=max_aspect,
                          empty_fraction=empty_fraction, closeup_fraction=closeup_fraction)
    counts = ", ".join(f"{k} {v}" for k, v in ds.class_counts().items())
    typer.echo(f"wrote {len(ds.records)} images ({counts}) to {out} "
               f"in {time.perf_counter() - start:.1f} s")


@data_app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="Data set folder (labels.csv or class folders).")],
    classes: Annotated[str | None, typer.Option(
        "--classes", help="Comma-separated expected classes "
        "(default clear,crystals,precipitate,other).")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the report as JSON to this file.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", help="Issues shown per kind (--json has all).")] = 10,
) -> None:
    """Report unreadable images, bad masks, unknown labels, class counts and duplicates.

    Exit 0 when the data set is usable (warnings allowed), 1 when it has errors."""
    from ..atomic import write_text
    from ..datacheck import check_dataset
    from ..dataset import load_dataset
    from ..errors import DataError

    try:
        total = len(load_dataset(path).records)
    except DataError:
        total = 0
    with _progress(total, "check") as advance:
        report = check_dataset(path, _split(classes), progress=advance)
    if json_out is not None:
        if json_out.is_dir():
            raise UsageError(f"--json {json_out} is a folder; give a file name")
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_text(json_out, report.to_json())
    typer.echo(report.render(limit))
    if not report.usable:
        raise typer.Exit(1)


class _progress:
    """A rich progress bar on stderr (stdout keeps the report) for long checks only."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what = total, what
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[], None] | None:
        if self.total < 200:
            return None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task(self.what, total=self.total)
        return lambda: bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("synth")(synth)
    app.add_typer(data_app, name="data")
