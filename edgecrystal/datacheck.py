"""`edgecrystal data check`: what is wrong with a data set, found before hours of training.

Every image and mask is decoded through the project's one decoder (edgecrystal.imageio), so
what passes here is what training will read. Errors make a data set unusable as it is
(unreadable images, missing or empty masks, masks of the wrong size, unknown or missing
labels); warnings are worth a look but do not stop training (non-binary masks, images without
masks, classes with few images, duplicate files).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import DEFAULT_CLASSES
from .dataset import Dataset, Record, load_dataset
from .errors import DataError, ImageError

# Fewer images than this in a class and a classifier will barely learn it.
MIN_PER_CLASS = 10


@dataclass(frozen=True)
class Issue:
    kind: str  # machine-readable, e.g. "image_truncated", "mask_blank", "label_unknown"
    path: str  # the file concerned, relative to the data set where possible ("" for the set)
    message: str


@dataclass
class DataCheckReport:
    root: str
    layout: str
    classes: list[str]
    images: int = 0
    masks: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.errors

    def verdicts(self) -> dict[str, str]:
        """Per purpose, "usable ..." or "NOT usable: why": the finder needs drop masks, the
        classifier needs labels from the class list."""
        unloadable = [e for e in self.errors if e.kind == "unloadable"]
        if unloadable:  # no data set at all: not "1 unreadable image"
            return {purpose: f"NOT usable: {unloadable[0].message}"
                    for purpose in ("finder", "classifier")}
        unreadable = [e for e in self.errors if e.kind.startswith("image_")]
        mask_errors = [e for e in self.errors if e.kind.startswith("mask_")]
        label_errors = [e for e in self.errors if e.kind in LABEL_KINDS]
        labelled = sum(n for c, n in self.counts.items() if c in self.classes)
        skipped = sum(1 for w in self.warnings if w.kind == "unlabelled")
        out = {}
        if unreadable:
            why = f"{len(unreadable)} unreadable image(s)"
            return {"finder": f"NOT usable: {why}", "classifier": f"NOT usable: {why}"}
        if self.masks < 2:
            out["finder"] = (f"NOT usable: {self.masks} image(s) with a drop mask (needs 2+); "
                             "train the classifier with --crop none, or use another bundle's "
                             "finder with --finder BUNDLE")
        elif mask_errors:
            out["finder"] = f"NOT usable: {len(mask_errors)} mask error(s)"
        else:
            out["finder"] = f"usable ({self.masks} images with masks)"
        if label_errors:
            out["classifier"] = f"NOT usable: {len(label_errors)} label problem(s)"
        elif labelled < 2:
            out["classifier"] = f"NOT usable: {labelled} labelled image(s) (needs 2+)"
        else:
            used = sum(1 for c in self.classes if self.counts.get(c))
            also = f"; {skipped} unlabelled image(s) skipped" if skipped else ""
            out["classifier"] = f"usable ({labelled} labelled images in {used} classes{also})"
        return out

    def error(self, kind: str, path: str, message: str) -> None:
        self.errors.append(Issue(kind, path, message))

    def warn(self, kind: str, path: str, message: str) -> None:
        self.warnings.append(Issue(kind, path, message))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["usable"] = self.usable
        d["verdicts"] = self.verdicts()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def render(self, limit: int = 10) -> str:
        """A readable report: summary, class counts, then issues grouped by kind."""
        lines = [f"data set {self.root} ({self.layout} layout): {self.images} images, "
                 f"{self.masks} with masks"]
        width = max((len(c) for c in self.counts), default=5)
        for cls, n in self.counts.items():
            note = "" if cls in self.classes else "  (not in the class list)"
            lines.append(f"  {cls:<{width}}  {n:>6}{note}")
        for title, issues in (("error", self.errors), ("warning", self.warnings)):
            by_kind: dict[str, list[Issue]] = defaultdict(list)
            for issue in issues:
                by_kind[issue.kind].append(issue)
            for kind, group in by_kind.items():
                lines.append(f"{title}: {kind.replace('_', ' ')} ({len(group)})")
                for issue in group[:limit]:
                    where = f"{issue.path}: " if issue.path else ""
                    lines.append(f"  {where}{issue.message}")
                if len(group) > limit:
                    lines.append(f"  ... and {len(group) - limit} more (see --json)")
        verdict = ("usable" if self.usable else "NOT usable") + (
            f": {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        lines.append(verdict)
        lines.extend(f"  {purpose}: {text}" for purpose, text in self.verdicts().items())
        return "\n".join(lines)


def check_dataset(path: str | Path, classes: Sequence[str] | None = None,
                  progress: Callable[[], None] | None = None) -> DataCheckReport:
    """Check every record of the data set at `path`; `progress` is called once per image."""
    class_list = list(classes) if classes else list(DEFAULT_CLASSES)
    try:
        ds = load_dataset(path)
    except DataError as exc:
        report = DataCheckReport(str(path), "unknown", class_list)
        report.error("unloadable", "", str(exc))
        return report
    report = DataCheckReport(str(ds.root), ds.layout, class_list, images=len(ds.records))
    hashes: dict[str, list[Record]] = defaultdict(list)
    listed = Counter(r.image for r in ds.records)
    # Decoding dominates and OpenCV releases the GIL while it decodes: threads suffice, and
    # map() keeps the report in data set order.
    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        results = pool.map(lambda r: _inspect(ds, r), ds.records)
        for rec, found in zip(ds.records, results, strict=True):
            _label_issues(report, ds, rec)
            for level, issue in found.issues:
                (report.errors if level == "error" else report.warnings).append(issue)
            report.masks += found.mask_read
            if found.sha256 and all(r.image != rec.image for r in hashes[found.sha256]):
                hashes[found.sha256].append(rec)
            if progress:
                progress()
    report.errors.extend(class_problems(ds, report.classes))
    _check_counts(report, ds)
    for image, n in listed.items():
        if n > 1:
            report.warn("listed_twice", _rel(ds, image), f"listed {n} times")
    for recs in hashes.values():
        if len(recs) > 1:
            labels = sorted({r.label or "" for r in recs})
            names = ", ".join(_rel(ds, r.image) for r in recs[:4])
            more = f" (+{len(recs) - 4} more)" if len(recs) > 4 else ""
            conflict = f"; labels differ: {', '.join(labels)}" if len(labels) > 1 else ""
            report.warn("duplicate_images", _rel(ds, recs[0].image),
                        f"{len(recs)} identical files: {names}{more}{conflict}")
    return report


@dataclass
class _Found:
    """What one record's files turned out to be (computed in a worker thread)."""

    issues: list[tuple[str, Issue]] = field(default_factory=list)
    sha256: str = ""
    mask_read: int = 0


def _threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))


def _rel(ds: Dataset, p: Path) -> str:
    try:
        return str(p.relative_to(ds.root))
    except ValueError:
        return str(p)


def _label_issues(report: DataCheckReport, ds: Dataset, rec: Record) -> None:
    if not rec.label:  # `train classifier` and `evaluate` skip it (Dataset.labelled)
        report.warn("unlabelled", _rel(ds, rec.image),
                    "no label: the classifier skips it (the finder uses its mask)")


# Folder names that hold masks, never a class.
MASK_FOLDERS = ("masks", "mask")
# Issues that stop a classifier from training (the finder needs no labels).
LABEL_KINDS = ("label_unknown", "masks_as_class", "masks_in_class_folder")


def class_problems(ds: Dataset, classes: Sequence[str]) -> list[Issue]:
    """Labels that are not in `classes`, one issue per label (with the closest class when it
    looks like a typo), and mask folders read as images of a class. Shared by `data check`
    and `train`, which refuses to turn any of these into a class."""
    import difflib

    problems: list[Issue] = []
    counts = Counter(r.label for r in ds.records if r.label)
    for label, n in counts.items():
        if label in classes:
            continue
        first = _rel(ds, next(r.image for r in ds.records if r.label == label))
        if ds.layout == "class-folders" and label.lower() in MASK_FOLDERS:
            problems.append(Issue("masks_as_class", first, (
                f"folder {label}/ ({n} images) would become a class; masks cannot be used with "
                "class folders: move it out, or use labels.csv with a mask column (docs/data.md)")))
            continue
        close = [c for c in classes if c.lower() == label.lower()] or difflib.get_close_matches(
            label, list(classes), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(Issue("label_unknown", first, (
            f"unknown class label {label!r} ({n} images): not one of {', '.join(classes)}"
            f"{hint} (--classes adds classes)")))
    nested = [r for r in ds.records if ds.layout == "class-folders" and any(
        part.lower() in MASK_FOLDERS for part in r.image.relative_to(ds.root).parts[1:-1])]
    if nested:
        problems.append(Issue("masks_in_class_folder", _rel(ds, nested[0].image), (
            f"{len(nested)} file(s) in a masks/ folder inside a class folder would train as "
            "drop photos of that class: move the masks out")))
    return problems


def _inspect(ds: Dataset, rec: Record) -> _Found:
    from .imageio import load_image

    found = _Found()
    name = _rel(ds, rec.image)
    img = None
    try:
        img = load_image(rec.image)
        found.sha256 = img.sha256
    except ImageError as exc:
        found.issues.append(("error", Issue(f"image_{exc.kind}", name, exc.reason)))
    if not ds.carries_masks:
        return found
    if rec.mask is None:
        found.issues.append(("warning", Issue(
            "mask_not_listed", name, "no mask (the finder cannot train on this image)")))
        return found
    _inspect_mask(found, ds, rec.mask, None if img is None else img.pixels.shape[:2])
    return found


def _inspect_mask(found: _Found, ds: Dataset, path: Path,
                  image_shape: tuple[int, ...] | None) -> None:
    from .imageio import read_image

    name = _rel(ds, path)
    try:
        mask = read_image(path)
    except ImageError as exc:
        found.issues.append(("error", Issue(f"mask_{exc.kind}", name, exc.reason)))
        return
    found.mask_read = 1
    if image_shape is not None and mask.shape[:2] != image_shape:
        found.issues.append(("error", Issue(
            "mask_size", name, f"mask is {mask.shape[1]}x{mask.shape[0]}, image is "
                               f"{image_shape[1]}x{image_shape[0]}")))
    plane = mask.max(axis=2)
    values = np.flatnonzero(np.bincount(plane.ravel(), minlength=256))
    if values.max() == 0:
        found.issues.append(("error", Issue(
            "mask_blank", name, "mask is all background (no drop marked)")))
    elif len(values) > 2:
        found.issues.append(("warning", Issue(
            "mask_not_binary", name,
            f"mask has {len(values)} grey levels; any value > 0 is read as drop")))


def _check_counts(report: DataCheckReport, ds: Dataset) -> None:
    counts = Counter(r.label for r in ds.records if r.label)
    report.counts = {c: counts.get(c, 0) for c in report.classes}
    report.counts.update({c: n for c, n in sorted(counts.items()) if c not in report.classes})
    for cls in report.classes:
        n = counts.get(cls, 0)
        if n == 0:
            report.warn("class_empty", "", f"class {cls!r} has no images")
        elif n < MIN_PER_CLASS:
            report.warn("class_small", "", f"class {cls!r} has only {n} image(s) "
                                          f"(fewer than {MIN_PER_CLASS})")
