"""Scoring images now (`edgecrystal score`): find the images, skip those already scored with
these models, run the pipeline in batches, write a result file beside each image and a summary
per folder. The command line only parses options and prints the `ScoreReport`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import Bundle
from .discovery import collect_images
from .errors import UsageError
from .imageio import DEFAULT_MAX_PIXELS
from .index.hook import open_writer
from .pipeline import Pipeline
from .results import Summaries, is_done, result_path, write_result
from .runtime.select import open_runners

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreOptions:
    recursive: bool = False
    overlay: bool = False
    backend: str = "auto"
    precision: str = "fp32"
    batch: int = 8
    threads: int = 0
    providers: tuple[str, ...] = ("cpu",)
    force: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    index: str | None = None  # results index URL (docs/review.md); None: none


@dataclass
class ScoreReport:
    classes: list[str]
    backend: str
    precision: str
    scored: int = 0
    skipped: int = 0  # already scored with these models
    elapsed_s: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # "path: kind: reason", one per image

    @property
    def images_per_second(self) -> float | None:
        return self.scored / self.elapsed_s if self.scored and self.elapsed_s > 0 else None


def score_paths(bundle_path: Path, paths: list[Path], options: ScoreOptions,
                progress: Callable[[str], None] | None = None) -> ScoreReport:
    """Score the image files and folders in `paths` with the bundle. `progress` gets one line
    when the backend is chosen and one per batch."""
    say = progress or log.info
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    images = collect_images(paths, options.recursive)
    if not images and not options.recursive:
        nested = [str(p) for p in paths if p.is_dir() and any(c.is_dir() for c in p.iterdir())]
        if nested:
            raise UsageError(f"no images directly in {', '.join(nested)} (it has subfolders: "
                             "pass --recursive to score them)")
    bundle = Bundle.open(bundle_path)
    selection = open_runners(bundle, backend=options.backend, precision=options.precision,
                             threads=options.threads, providers=list(options.providers))
    # Skipped: what already has a result from exactly these models (the variant files that
    # run, backend, precision), so a rebuilt variant or another precision rescores.
    fingerprint = bundle.runtime_fingerprint(selection.backend, options.precision)
    todo = images if options.force else [p for p in images if not is_done(p, fingerprint)]
    say(f"backend: {selection.describe()}")
    report = ScoreReport(bundle.classes, selection.backend, options.precision,
                         skipped=len(images) - len(todo))
    start = time.perf_counter()
    summaries = Summaries(bundle.classes)
    index = open_writer(options.index)
    if index is not None:  # scored before: into the index all the same
        waiting = set(todo)
        for done in (p for p in images if p not in waiting):
            index.add(result_path(done))
    with Pipeline(bundle, selection.finder, selection.classifier, backend=selection.backend,
                  precision=options.precision, max_pixels=options.max_pixels,
                  outlines=options.overlay) as pipeline:
        for first in range(0, len(todo), options.batch):
            for scored in pipeline.score(todo[first : first + options.batch]):
                if scored.error_kind == "missing":
                    report.errors.append(f"{scored.path}: {scored.error_reason}")
                    continue  # no result file beside a file that is not there
                result = write_result(scored, pipeline.model, overlay=options.overlay)
                if index is not None:
                    index.add(result)  # queued only: the index never holds scoring back
                if scored.ok:
                    report.labels[scored.label or "?"] += 1
                else:
                    report.errors.append(
                        f"{scored.path}: {scored.error_kind}: {scored.error_reason}")
            say(f"scored {min(first + options.batch, len(todo))}/{len(todo)}")
        for folder in sorted({p.parent for p in images}):
            summaries.update(folder)
    report.scored = len(todo)
    report.elapsed_s = time.perf_counter() - start
    if index is not None:
        index.close(timeout=60)  # logs one line when it could not catch up
    return report
