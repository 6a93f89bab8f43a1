"""Write a synthetic data set in the project's layout (labels.csv, images/, masks/).

Every image has its own random generator seeded from (seed, index), so the files do not
depend on how the work is split between processes: same seed and arguments, same bytes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import DEFAULT_CLASSES
from ..dataset import Dataset, load_dataset, write_labels_csv
from ..errors import UsageError
from .contents import check_classes
from .styles import ALL_STYLES, STYLES

J = TypeVar("J")
R = TypeVar("R")

IMAGE_DIR = "images"
MASK_DIR = "masks"
# Crystal masks (crystal model ground truth): one PNG per image, 255 on crystal pixels, listed
# in labels.csv's `crystals` column (empty masks too: "no crystal here" is ground truth).
CRYSTAL_DIR = "crystals"
JPEG_QUALITY = 92
ROWS = "ABCDEFGH"
COLUMNS = ("style", "plate", "well", "habit", "size", "drop_shape", "drop_fraction", "bubbles",
           "crystals")
CLOSEUP_STREAM = 7  # image_rng's (seed, index) plus this: the close-up choice and window


def check_styles(styles: Sequence[str] | None) -> tuple[str, ...]:
    if not styles:
        return STYLES
    names = tuple(s.strip() for s in styles if s.strip())
    unknown = [s for s in names if s not in ALL_STYLES]
    if unknown or not names:
        raise UsageError(f"unknown style {', '.join(unknown) or '(empty)'} "
                         f"(choose from {', '.join(ALL_STYLES)})")
    return tuple(dict.fromkeys(names))


def image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def assignments(n: int, seed: int, classes: Sequence[str],
                styles: Sequence[str]) -> list[tuple[str, str]]:
    """Balanced labels and styles, shuffled by the seed: (label, style) per index."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    labels = [classes[i % len(classes)] for i in range(n)]
    rng.shuffle(labels)
    # Styles are balanced within every class, so no style predicts a label.
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    offset = {c: int(rng.integers(0, len(styles))) for c in classes}
    for label in labels:
        k = seen.get(label, 0)
        seen[label] = k + 1
        out.append((label, styles[(k + offset[label]) % len(styles)]))
    return out


def image_size(seed: int, index: int, size: int | tuple[int, int],
               max_aspect: float) -> tuple[int, int]:
    """(width, height) of image `index`: a fixed square, or the longer side drawn from a range
    and the aspect ratio from 1:1 to `max_aspect`, landscape or portrait (own seeded stream, so
    the scene drawn for an index does not depend on the size options)."""
    if isinstance(size, int) and max_aspect <= 1.0:
        return size, size
    lo, hi = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0x512E]))
    longer = int(rng.integers(lo, hi + 1))
    shorter = round(longer / rng.uniform(1.0, max(1.0, max_aspect)))
    return (longer, shorter) if rng.random() < 0.8 else (shorter, longer)


def _render_one(job: tuple[Path, int, int, int | tuple[int, int], float, float, str, str,
                           float]) -> dict[str, str]:
    from ..imageio import write_image

    out, seed, index, size, max_aspect, empty_fraction, label, style, closeups = job
    width, height = image_size(seed, index, size, max_aspect)
    rgb, mask, crystal_mask, meta = render_view(seed, index, width, height, label, style,
                                                empty_fraction, closeups)
    if not mask.any():
        label = ""  # an empty well has no class: it teaches the finder "no drop", nothing else
    name = f"synth_{index:06d}"
    image = f"{IMAGE_DIR}/{name}.jpg"
    mask_path = f"{MASK_DIR}/{name}.png"
    crystal_path = f"{CRYSTAL_DIR}/{name}.png"
    write_image(out / image, rgb, quality=JPEG_QUALITY)
    write_image(out / mask_path, mask.astype(np.uint8) * 255)
    write_image(out / crystal_path, crystal_mask.astype(np.uint8) * 255)
    plate = f"synth-{seed}-{index // 96:04d}"
    well = f"{ROWS[(index % 96) // 12]}{index % 12 + 1:02d}"
    return {"image": image, "mask": mask_path, "label": label, "crystals": crystal_path,
            "plate": plate, "well": well, **meta}


def render_view(seed: int, index: int, width: int, height: int, label: str, style: str,
                 empty_fraction: float, closeups: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """One well as the imager shows it. With `closeups` > 0 that share of wells (chosen from a
    stream of their own, so the choice does not move the scenes) is rendered twice as large
    and shown as a close-up of the drop (synth/closeup.py), or, where the drop is too small
    to zoom into, as the whole well at the asked size; the metadata's `view` says which."""
    from .closeup import CLOSEUP_SCALE, closeup, resized
    from .scene import render_any_crystals

    rng = image_rng(seed, index)
    pick = np.random.default_rng([seed, index, CLOSEUP_STREAM])
    if closeups <= 0 or pick.random() >= closeups:
        rgb, mask, crystals, meta = render_any_crystals(rng, width, height, label, style,
                                                        empty_chance=empty_fraction)
        return rgb, mask, crystals, {**meta, **({"view": "well"} if closeups > 0 else {})}
    big_rgb, big_mask, big_crystals, meta = render_any_crystals(
        rng, width * CLOSEUP_SCALE, height * CLOSEUP_SCALE, label, style,
        empty_chance=empty_fraction)
    view = closeup(pick, big_rgb, big_mask, big_crystals, label, width, height)
    if view is None:
        return (*resized(big_rgb, big_mask, big_crystals, width, height),
                {**meta, "view": "well"})
    return (*view, {**meta, "view": "closeup"})


def default_workers(n: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if n < 32 else max(1, min(4, cores or 1))


def generate_dataset(out: Path, n: int, seed: int = 0, size: int | tuple[int, int] = 512,
                     classes: Sequence[str] = DEFAULT_CLASSES,
                     styles: Sequence[str] | None = None, progress: bool = False,
                     workers: int | None = None, max_aspect: float = 1.0,
                     empty_fraction: float = 0.0, closeup_fraction: float = 0.0) -> Dataset:
    """Write n synthetic well images with drop masks and labels to `out`; return the data set.

    `size` is the side of square images, or a (min, max) range of the longer side; with
    `max_aspect` > 1 images are up to that much wider (or taller) than high. `empty_fraction`
    of the `random` style's wells hold no drop (empty mask, no label). `closeup_fraction` of
    the wells are close-ups of their drop (synth/closeup.py; labels.csv gets a `view`
    column); 0 writes the same bytes as before the option existed."""
    out = Path(out)
    if n <= 0:
        raise UsageError(f"--n must be at least 1 (got {n})")
    sizes = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(sizes) < 64 or max(sizes) > 4096 or sizes[0] > sizes[1]:
        raise UsageError(f"--size must be between 64 and 4096 pixels (got {size})")
    if not 1.0 <= max_aspect <= 2.0:
        raise UsageError(f"--max-aspect must be between 1 and 2 (got {max_aspect})")
    if not 0.0 <= empty_fraction < 1.0:
        raise UsageError(f"--empty-fraction must be in [0, 1) (got {empty_fraction})")
    if not 0.0 <= closeup_fraction <= 1.0:
        raise UsageError(f"--closeup-fraction must be in [0, 1] (got {closeup_fraction})")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder")
    names = check_classes(classes)
    style_names = check_styles(styles)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out / MASK_DIR).mkdir(parents=True, exist_ok=True)
    (out / CRYSTAL_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, i, size, max_aspect, empty_fraction, label, style, closeup_fraction)
            for i, (label, style) in enumerate(assignments(n, seed, names, style_names))]
    workers = default_workers(n) if workers is None else max(1, workers)
    rows = run_jobs(_render_one, jobs, workers, progress)
    write_labels_csv(out, rows, [*COLUMNS, *(["view"] if closeup_fraction > 0 else [])])
    return load_dataset(out)


def _warm(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool already uses every core; nested threads only contend


def run_jobs(fn: Callable[[J], R], jobs: list[J], workers: int, progress: bool,
             what: str = "synth") -> list[R]:
    """fn over jobs, in order, on `workers` processes (fn must be a module-level function)."""
    if workers == 1 or len(jobs) < 2:
        return _collect(map(fn, jobs), len(jobs), progress, what)
    # spawn, not fork: a forked child inherits OpenCV's thread pool in whatever state the
    # parent left it and can hang on its first cv2 call (seen under pytest). Package __main__
    # modules and console scripts are not re-run by spawn, so `python -m edgecrystal` is safe.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_warm, initargs=(0,)) as pool:
        chunk = max(1, min(8, len(jobs) // (4 * workers)))
        return _collect(pool.map(fn, jobs, chunksize=chunk), len(jobs), progress, what)


def _collect(rows: Iterable[Any], total: int, progress: bool, what: str) -> list[Any]:
    """Drain `rows` in order, advancing a progress bar when asked."""
    bar = _progress_bar(total, what) if progress else None
    try:
        out = []
        for row in rows:
            out.append(row)
            if bar:
                bar.advance()
        return out
    finally:
        if bar:
            bar.close()


class _Bar:
    def __init__(self, total: int, what: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress("[progress.description]{task.description}", BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 transient=False)
        self.progress.start()
        self.task = self.progress.add_task(what, total=total)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()


def _progress_bar(total: int, what: str = "synth") -> _Bar:
    return _Bar(total, what)
