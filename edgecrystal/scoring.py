"""Scoring images now (`edgecrystal score`): find the images, skip those already scored with
these models, run the pipeline in batches, write a result file beside each image and a summary
per folder. The command line only parses options and prints the `ScoreReport`.

Decoding, inference and writing overlap (edgecrystal/stages.py). With `workers` > 1 the images
are split over that many processes, each with its own pipeline; the parent skips what is done,
keeps the index and the summaries, and merges one report. One driver (`drive`) does the
merging, the index and the summaries for plain, --workers and --ray runs (scale/ray_score.py
only says where chunks run), and one rule (`unscored`) says what is skipped."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from .bundle import BUNDLE_FILE, Bundle
from .collapse import useless_scores
from .discovery import collect_images
from .errors import UsageError
from .imageio import DEFAULT_MAX_PIXELS
from .index.hook import open_writer
from .pipeline import ModelInfo, Pipeline, Scored
from .results import finish_folders, is_done, result_path, write_result
from .session import open_pipeline
from .stages import StageRunner, Written

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
    workers: int = 1  # processes, each with its own pipeline


# Score rows kept per share, and in all, for the useless-classifier check (a few hundred KB).
SCORES_KEPT = 2000


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
    marks: Counter[str] = field(default_factory=Counter)  # "crystals_hit", "uncertain"
    warnings: list[str] = field(default_factory=list)  # "path: warning", images scored ok
    useless: str | None = None  # the classifier's scores barely vary (collapse.useless_scores)
    # Images scored whole because the finder found no drop, by drop.reason ("no edge"...).
    no_drop: Counter[str] = field(default_factory=Counter)

    @property
    def images_per_second(self) -> float | None:
        return self.scored / self.elapsed_s if self.scored and self.elapsed_s > 0 else None

    def add(self, share: ShareReport) -> None:
        """Merge what one share did (its score rows stay with the driver)."""
        self.scored += share.scored
        self.skipped += share.skipped
        self.labels.update(share.labels)
        self.marks.update(share.marks)
        self.errors.extend(share.errors)
        self.warnings.extend(share.warnings)
        self.no_drop.update(share.no_drop)


def score_paths(bundle_path: Path, paths: list[Path], options: ScoreOptions,
                progress: Callable[[str], None] | None = None) -> ScoreReport:
    """Score the image files and folders in `paths` with the bundle. `progress` gets one line
    when the backend is chosen and one per batch (per worker's share with `workers`)."""
    say = progress or log.info
    if options.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {options.workers}")
    images = find_images(paths, options.recursive)
    # The models load on first use: with workers, this process only chooses (the fingerprint
    # that the skip rule needs, the line below) and each worker loads its own.
    with open_options(bundle_path, options) as pipeline:
        selection = pipeline.selection
        assert selection is not None  # open_pipeline always records it
        say(f"backend: {selection.describe()}"
            + (f"; {options.workers} workers" if options.workers > 1 else ""))
        todo, skipped = unscored(images, pipeline.model.fingerprint, options.force)
        report = ScoreReport(list(pipeline.classes), selection.backend, selection.precision)
        if options.workers > 1 and len(todo) > 1:
            shares = _score_in_workers(bundle_path, todo, options, say)
        else:
            shares = _in_this_process(pipeline, todo, options, say)
        return drive(report, images, options, chain([skipped], shares))


def _in_this_process(pipeline: Pipeline, todo: list[Path], options: ScoreOptions,
                     say: Callable[[str], None]) -> Iterator[ShareReport]:
    """The whole run as one share, scored when the driver asks for it."""
    yield score_with(pipeline, todo, options, say)


def open_options(bundle: Bundle | Path, options: ScoreOptions) -> Pipeline:
    """The pipeline `options` ask for (backend, precision, threads per worker, providers,
    overlays, the decoder's limit): what every process of a score run opens."""
    return open_pipeline(bundle, backend=options.backend, precision=options.precision,
                         threads=_threads_per_worker(options), providers=options.providers,
                         outlines=options.overlay, max_pixels=options.max_pixels)


def unscored(images: list[Path], fingerprint: str, force: bool) -> tuple[list[Path], ShareReport]:
    """The skip rule: what to score, and a share that records the rest. Skipped is what already
    has a result from exactly these models (`fingerprint`: the variant files that run, backend,
    precision), so a rebuilt variant or another precision rescores; --force skips nothing."""
    done = set() if force else {p for p in images if is_done(p, fingerprint)}
    skipped = ShareReport(skipped=len(done), results=[result_path(p) for p in images if p in done])
    return [p for p in images if p not in done], skipped


def drive(report: ScoreReport, images: list[Path], options: ScoreOptions,
          shares: Iterator[ShareReport]) -> ScoreReport:
    """The one score driver (plain, --workers and --ray): merge each share into `report` as it
    comes back (wherever it ran), feed its result files to the index (skipped ones too: scored
    before, into the index all the same), then the per-folder summaries and the
    useless-classifier check. `shares` is consumed here, so its work runs while the index
    writer is open."""
    start = time.perf_counter()
    index = open_writer(options.index)
    scores: list[list[float]] = []
    try:
        for share in shares:
            report.add(share)
            # A sample for the useless-classifier check: bounded however large the archive.
            scores.extend(share.scores[: max(0, SCORES_KEPT - len(scores))])
            if index is not None:
                for result in share.results:
                    index.add(result)  # queued only: the index never holds scoring back
        finish_folders(report.classes, images)
        report.useless = useless_scores(scores, report.classes)
        report.elapsed_s = time.perf_counter() - start
        return report
    finally:
        if index is not None:  # what came back before a failure gets into the index too
            index.close(timeout=60)  # logs one line when it could not catch up


def bundle_and_paths(first: Path, rest: list[Path]) -> tuple[Path, list[Path]]:
    """`score [BUNDLE] PATH...`: the first argument is the bundle when it is a bundle folder (it
    holds bundle.json); when it is an image or a folder of images instead, every argument is a
    path and the shipped default bundle scores them. A first argument that does not exist is
    taken for a bundle when paths follow it (so a mistyped bundle says so)."""
    from .pretrained import default_bundle_path

    if (first / BUNDLE_FILE).is_file() or (rest and not first.exists()):
        return first, rest
    return default_bundle_path(), [first, *rest]


def find_images(paths: list[Path], recursive: bool) -> list[Path]:
    """The images to score in `paths` (files and folders), or a one-line UsageError: a missing
    path, or folders that only hold subfolders without --recursive."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    bundles = [str(p) for p in paths if (p / BUNDLE_FILE).is_file()]
    if bundles:  # `score IMAGES BUNDLE`: said "no images in BUNDLE (pass --recursive)"
        raise UsageError(f"{', '.join(bundles)} is a model bundle, not images: the bundle "
                         "comes first (edgecrystal score BUNDLE IMAGES...)")
    images = collect_images(paths, recursive)
    if not images and not recursive:
        nested = [str(p) for p in paths if p.is_dir() and any(c.is_dir() for c in p.iterdir())]
        if nested:
            raise UsageError(f"no images directly in {', '.join(nested)} (it has subfolders: "
                             "pass --recursive to score them)")
    return images


@dataclass
class ShareReport:
    """What one process (or Ray actor) did with its share: counts, labels, one error line per
    failed image, the result files (written, or already there when skipped)."""

    scored: int = 0
    skipped: int = 0  # already had a result from exactly these models
    labels: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    no_drop: Counter[str] = field(default_factory=Counter)
    # Score rows of the first SCORES_KEPT images scored ok: enough to tell a useless classifier.
    scores: list[list[float]] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)
    marks: Counter[str] = field(default_factory=Counter)  # "crystals_hit", "uncertain"

    def merged(self, other: ShareReport) -> ShareReport:
        """This share and `other` as one (a Ray chunk: its skipped part and its scored part)."""
        return ShareReport(
            scored=self.scored + other.scored, skipped=self.skipped + other.skipped,
            labels=self.labels + other.labels, errors=self.errors + other.errors,
            warnings=self.warnings + other.warnings, no_drop=self.no_drop + other.no_drop,
            scores=(self.scores + other.scores)[:SCORES_KEPT],
            results=self.results + other.results, marks=self.marks + other.marks)


def score_with(pipeline: Pipeline, todo: list[Path], options: ScoreOptions,
               say: Callable[[str], None]) -> ShareReport:
    """Score `todo` with an open pipeline: read the next batch and write the last one while
    this one runs through the models (the calling thread owns them). A result file beside each
    image; a missing image gets an error line and no result file."""
    share = ShareReport(scored=len(todo))
    done = 0

    def write(batch: tuple[list[Scored], ModelInfo]) -> list[Path]:
        scored, model = batch
        return [write_result(r, model, overlay=options.overlay) for r in scored]

    def collect(written: Written[tuple[list[Scored], ModelInfo], list[Path]]) -> None:
        nonlocal done
        scored, _ = written.item
        if written.error is not None:  # a full disk: one line per image, the rest goes on
            share.errors.extend(f"{r.path}: cannot write result: {written.error}"
                                for r in scored)
        else:
            share.results.extend(written.outcome or [])
            for r in scored:
                if r.ok:
                    share.labels[r.label or "?"] += 1
                    share.marks.update(mark for mark in ("crystals_hit", "uncertain")
                                       if getattr(r, mark))
                    share.warnings.extend(f"{r.path}: {warning}" for warning in r.warnings)
                    if r.searched and not r.found:
                        share.no_drop[r.drop_reason or "no edge"] += 1
                    if len(share.scores) < SCORES_KEPT:
                        share.scores.append(list(r.scores.values()))
                else:
                    share.errors.append(f"{r.path}: {r.error_kind}: {r.error_reason}")
        done += len(scored)
        say(f"scored {done}/{len(todo)}")

    def infer(loaded: list[Any]) -> tuple[list[Scored], ModelInfo]:
        scored = pipeline.infer(loaded)
        for r in scored:
            if r.error_kind == "missing":  # no result file beside a file that is not there
                share.errors.append(f"{r.path}: {r.error_reason}")
        return [r for r in scored if r.error_kind != "missing"], pipeline.model

    batches = (todo[first : first + options.batch]
               for first in range(0, len(todo), options.batch))
    with StageRunner(pipeline.read, write, depth=1, name="score") as stages:
        stages.run_all(batches, infer, collect)
    return share


def _score_in_workers(bundle_path: Path, todo: list[Path], options: ScoreOptions,
                      say: Callable[[str], None]) -> Iterator[ShareReport]:
    """Split `todo` over `options.workers` processes (spawned: a forked ONNX Runtime with live
    threads is not safe). Each share is every n-th image, so a folder's images spread evenly."""
    workers = min(options.workers, len(todo))
    shares = [todo[i::workers] for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_worker, bundle_path, share, options) for share in shares]
        for number, future in enumerate(futures, 1):
            yield future.result()
            say(f"worker {number}/{workers} done")


def _worker(bundle_path: Path, todo: list[Path], options: ScoreOptions) -> ShareReport:
    with open_options(bundle_path, options) as pipeline:
        return score_with(pipeline, todo, options, log.debug)


def _threads_per_worker(options: ScoreOptions) -> int:
    """--threads as given; else the cores shared out, so workers x threads <= cores."""
    if options.threads or options.workers <= 1:
        return options.threads
    return max(1, (os.cpu_count() or 1) // options.workers)
