"""One imaging of a plate as an imager writes it: A01_1.jpg .. H12_1.jpg plus truth.csv.

The daemon, the bench and the demo watch folders like this. All wells of a plate share one
imager style (one plate, one imager); labels are balanced and shuffled by the seed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import DEFAULT_CLASSES
from ..atomic import write_bytes, write_text
from ..errors import UsageError
from .contents import check_classes
from .generate import JPEG_QUALITY, check_styles, default_workers, image_rng, run_jobs
from .styles import STYLES

TRUTH_FILE = "truth.csv"


def well_names(rows: int, cols: int) -> list[str]:
    if not 1 <= rows <= 26 or not 1 <= cols <= 99:
        raise UsageError(f"a plate has 1-26 rows and 1-99 columns (got {rows}x{cols})")
    return [f"{chr(ord('A') + r)}{c + 1:02d}" for r in range(rows) for c in range(cols)]


def make_plate(out: Path, seed: int = 0, rows: int = 8, cols: int = 12, width: int = 1280,
               height: int = 960, style: str | None = None,
               classes: Sequence[str] = DEFAULT_CLASSES, count: int | None = None,
               workers: int | None = None, progress: bool = False) -> list[Path]:
    """Write one plate imaging to `out`; return the image paths in well order.

    `count` writes that many wells in row-major order from A01: fewer for small plates in
    tests and demos, more (rows I, J, ...) for large benchmark batches.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder")
    if width < 32 or height < 32:
        raise UsageError(f"image size {width}x{height} is too small (at least 32 px)")
    names = check_classes(classes)
    wells = well_names(rows, cols)
    if count is not None:
        # More wells than the plate has: carry on with rows I, J, ... (a benchmark may want
        # a batch of 256 images), up to row Z.
        if not 1 <= count <= 26 * cols:
            raise UsageError(f"well count must be 1 to {26 * cols} with {cols} columns "
                             f"(got {count})")
        wells = well_names(max(rows, -(-count // cols)), cols)[:count]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x91A7E]))
    style = check_styles([style])[0] if style else str(rng.choice(STYLES))
    labels = [names[i % len(names)] for i in range(len(wells))]
    rng.shuffle(labels)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"{well}_1.jpg", seed, i, width, height, label, style)
            for i, (well, label) in enumerate(zip(wells, labels, strict=True))]
    workers = default_workers(len(jobs)) if workers is None else max(1, workers)
    paths = run_jobs(_write_well, jobs, workers, progress, "plate")
    truth = io.StringIO()
    writer = csv.writer(truth, lineterminator="\n")
    writer.writerow(["image", "label", "style"])
    for path, (_, _, _, _, _, label, _) in zip(paths, jobs, strict=True):
        writer.writerow([path.name, label, style])
    write_text(out / TRUTH_FILE, truth.getvalue())
    return paths


def _write_well(job: tuple[Path, int, int, int, int, str, str]) -> Path:
    import cv2

    from .scene import render_any

    path, seed, index, width, height, label, style = job
    rgb, _, _ = render_any(image_rng(seed, index), width, height, label, style)
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise UsageError("OpenCV could not encode a JPEG")
    # Atomic: a watching daemon never sees half an image.
    write_bytes(path, enc.tobytes())
    return path
