"""`edgecrystal evaluate DATA --crystals CSV`: how well the crystal model's boxes match boxes a
person drew, through the deployed path (the bundle's ONNX on ONNX Runtime, opened by
session.open_pipeline as `score` opens it: the same decoding, finder, crop and crystal stage).

The CSV (`path,x0,y0,x1,y1,kind,certainty,note`, one row per box in original pixels, x1/y1
exclusive; paths relative to DATA, else to the CSV's folder) is the one of
/work/shared/real-samples/crystals.csv: `kind` single, cluster, needles, shower, or `none` for an
image checked to hold no crystal (its box columns empty); `certainty` sure or doubtful.

Or, for synthetic data (`--crystals masks`): DATA's labels.csv names a crystal mask per image
in a `crystals` column (what `edgecrystal synth` writes: a PNG the image's size, 255 on crystal
pixels); the true boxes are the mask's 8-connected components (all sure), and an image whose
mask is empty counts as checked to hold no crystal.

Which boxes count (`certainty`): "sure" (the default) scores against the sure boxes and treats
doubtful ones as regions to ignore: a predicted box matching one is neither right nor wrong, and
a missed doubtful box is not a miss. "all" scores against every box.

Matching, per image and IoU threshold (0.3 and 0.5): predicted boxes, most certain first, each
take the unmatched true box they overlap most if the IoU reaches the threshold (a true
positive); otherwise one lying mostly (half its area or more) inside a region to ignore is left
out (as COCO treats its crowd regions: a doubtful box is no standard to measure overlap
against), and the rest are false positives. Precision = TP / (TP + FP), recall = TP / true
boxes. Boxes on `none` images are counted on their own too ("boxes on none images"): the false
alarms a user would chase on a drop without crystals. Count error: mean |predicted boxes - true
boxes| per image (true: the boxes that count). crystals.png: every image, true boxes green
(ignored ones yellow), predicted ones magenta, worst first.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .crystal_boxes import CrystalBox
from .errors import DataError, UsageError

IOU_THRESHOLDS = (0.3, 0.5)
CERTAINTIES = ("sure", "all")
COLUMNS = ("path", "x0", "y0", "x1", "y1", "kind", "certainty")
NONE_KIND = "none"
# `--crystals masks`: the true boxes from DATA's crystal masks (labels.csv `crystals` column).
FROM_MASKS = "masks"
MASK_COLUMN = "crystals"
BATCH = 8
# A predicted box at least this share inside a region to ignore is neither right nor wrong.
IGNORE_SHARE = 0.5
# RGB colours of the contact sheet.
TRUE_COLOUR = (0, 220, 0)
IGNORED_COLOUR = (255, 210, 0)
PREDICTED_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class TrueBox:
    box: tuple[int, int, int, int]
    kind: str
    certainty: str  # "sure" | "doubtful"


@dataclass
class ImageTruth:
    """One image of the CSV: its boxes, or none (checked to hold no crystal)."""

    name: str  # as the CSV writes it
    path: Path
    boxes: list[TrueBox]
    checked_none: bool = False

    def split(self, certainty: str) -> tuple[list[TrueBox], list[TrueBox]]:
        """(boxes that count, regions to ignore) under `certainty`."""
        if certainty == "all":
            return list(self.boxes), []
        return ([b for b in self.boxes if b.certainty == "sure"],
                [b for b in self.boxes if b.certainty != "sure"])


def read_truth(csv_path: Path, data_dir: Path) -> list[ImageTruth]:
    """The CSV's images in file order; a DataError naming the line for anything malformed."""
    if not csv_path.is_file():
        raise UsageError(f"--crystals {csv_path}: no such file")
    images: dict[str, ImageTruth] = {}
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path} lacks column(s) {', '.join(missing)} (expected "
                            f"{','.join(COLUMNS)},note)")
        for line, row in enumerate(reader, start=2):
            name = (row.get("path") or "").strip()
            if not name:
                continue
            where = f"{csv_path}:{line}"
            image = images.get(name)
            if image is None:
                image = images[name] = ImageTruth(name, _resolve(name, data_dir, csv_path,
                                                                 where), [])
            kind = (row.get("kind") or "").strip()
            certainty = (row.get("certainty") or "").strip() or "sure"
            if certainty not in ("sure", "doubtful"):
                raise DataError(f"{where}: certainty {certainty!r} is not sure or doubtful")
            if kind == NONE_KIND:
                image.checked_none = True
                continue
            image.boxes.append(TrueBox(_box(row, where), kind, certainty))
    for image in images.values():
        if image.checked_none and image.boxes:
            raise DataError(f"{csv_path}: {image.name} is marked {NONE_KIND} and has boxes")
    if not images:
        raise DataError(f"{csv_path} lists no images")
    return list(images.values())


def truth_from_masks(records: list[Any], root: Path) -> list[ImageTruth]:
    """The true boxes of synthetic data: each record's crystal mask (labels.csv `crystals`
    column) as its 8-connected components; an empty mask: an image with no crystal."""
    import cv2

    from .imageio import read_image

    truth = []
    for record in records:
        rel = (record.meta.get(MASK_COLUMN) or "").strip()
        if not rel:
            continue
        mask = read_image(root / rel).max(axis=2) > 127
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8),
                                                             connectivity=8)
        boxes = [TrueBox((int(x), int(y), int(x + w), int(y + h)), "mask", "sure")
                 for x, y, w, h, _area in stats[1:count]]
        name = str(record.image.relative_to(root)) if record.image.is_relative_to(root) \
            else str(record.image)
        truth.append(ImageTruth(name, record.image, boxes, checked_none=not boxes))
    if not truth:
        raise DataError(f"--crystals {FROM_MASKS}: {root} names no crystal masks (a "
                        f"`{MASK_COLUMN}` column in labels.csv, as `edgecrystal synth` writes)")
    return truth


def _resolve(name: str, data_dir: Path, csv_path: Path, where: str) -> Path:
    for base in (data_dir, csv_path.parent):
        path = Path(name) if Path(name).is_absolute() else base / name
        if path.is_file():
            return path
    raise DataError(f"{where}: image {name} not found under {data_dir} or {csv_path.parent}")


def _box(row: dict[str, str | None], where: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int((row.get(k) or "").strip()) for k in ("x0", "y0", "x1", "y1"))
    except ValueError:
        raise DataError(f"{where}: x0,y0,x1,y1 must be whole pixels") from None
    if x1 <= x0 or y1 <= y0 or x0 < 0 or y0 < 0:
        raise DataError(f"{where}: box ({x0}, {y0}, {x1}, {y1}) is empty or negative "
                        "(x1 and y1 are exclusive)")
    return x0, y0, x1, y1


def _intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _area(a: tuple[int, int, int, int]) -> int:
    return (a[2] - a[0]) * (a[3] - a[1])


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter = _intersection(a, b)
    return inter / (_area(a) + _area(b) - inter) if inter else 0.0


def _inside_share(a: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> float:
    """The share of box `a` inside `region`."""
    return _intersection(a, region) / _area(a) if _area(a) else 0.0


@dataclass(frozen=True)
class Match:
    tp: int
    fp: int
    fn: int
    ignored: int


def match(predicted: list[CrystalBox], counted: list[TrueBox], ignored: list[TrueBox],
          threshold: float) -> Match:
    """Greedy matching, most certain prediction first (see the module's docstring)."""
    free = list(range(len(counted)))
    tp = fp = left_out = 0
    for pred in sorted(predicted, key=lambda c: -c.score):
        overlaps = [(iou(pred.box, counted[k].box), k) for k in free]
        best = max(overlaps, default=(0.0, -1))
        if best[0] >= threshold:
            tp += 1
            free.remove(best[1])
        elif any(_inside_share(pred.box, region.box) >= IGNORE_SHARE for region in ignored):
            left_out += 1
        else:
            fp += 1
    return Match(tp, fp, len(free), left_out)


def evaluate_crystals(bundle: Bundle, source: str | Path, data_dir: Path, out: Path,
                      precision: str = "fp32", certainty: str = "sure") -> dict[str, Any]:
    """The `crystals` section of evaluate's report (and crystals.png in `out`): `source` a box
    CSV, or FROM_MASKS for DATA's crystal masks."""
    from .session import open_pipeline

    if certainty not in CERTAINTIES:
        raise UsageError(f"--crystal-certainty must be one of {', '.join(CERTAINTIES)} "
                         f"(got {certainty})")
    if not bundle.has("crystals"):
        raise UsageError(f"bundle {bundle.root} has no crystal model to evaluate "
                         "(no crystals section)")
    if str(source) == FROM_MASKS:
        from .dataset import load_dataset

        ds = load_dataset(data_dir)
        truth = truth_from_masks(ds.records, ds.root)
        described = f"crystal masks of {ds.root}"
    else:
        truth = read_truth(Path(source), data_dir)
        described = str(source)
    predicted: list[list[CrystalBox]] = []
    previews: list[np.ndarray] = []
    widths: list[int] = []
    with open_pipeline(bundle, backend="onnxruntime", precision=precision,
                       outlines=True) as pipeline:
        runtime = f"onnxruntime {pipeline.model.precision}"
        for start in range(0, len(truth), BATCH):
            for r in pipeline.score([t.path for t in truth[start:start + BATCH]]):
                if not r.ok or r.crystals is None or r.preview is None:
                    raise DataError(f"cannot score {r.path}: {r.error_reason}")
                predicted.append(r.crystals)
                previews.append(r.preview)
                widths.append(r.width)
    per_image, totals = [], {t: [0, 0, 0, 0] for t in IOU_THRESHOLDS}
    count_errors = []
    for image, boxes in zip(truth, predicted, strict=True):
        counted, ignored = image.split(certainty)
        row: dict[str, Any] = {"image": image.name, "predicted": len(boxes),
                               "true": len(counted), "ignored_regions": len(ignored),
                               "none_image": image.checked_none,
                               "boxes": [b.as_dict() for b in boxes]}
        for t in IOU_THRESHOLDS:
            m = match(boxes, counted, ignored, t)
            row[f"iou{t}"] = {"tp": m.tp, "fp": m.fp, "fn": m.fn, "ignored": m.ignored}
            for k, v in enumerate((m.tp, m.fp, m.fn, m.ignored)):
                totals[t][k] += v
        count_errors.append(abs(len(boxes) - len(counted)))
        per_image.append(row)
    none_rows = [row for row in per_image if row["none_image"]]
    settings = bundle.crystal_settings()
    section: dict[str, Any] = {
        "truth": described, "certainty": certainty, "runtime": runtime,
        "images": len(truth), "true_boxes": sum(row["true"] for row in per_image),
        "ignored_regions": sum(row["ignored_regions"] for row in per_image),
        "predicted_boxes": sum(row["predicted"] for row in per_image),
        "settings": settings.as_record() if settings else None,
        "by_iou": {str(t): _rates(*totals[t]) for t in IOU_THRESHOLDS},
        "count_mae": float(np.mean(count_errors)),
        "none_images": len(none_rows),
        "boxes_on_none_images": sum(row["predicted"] for row in none_rows),
        "none_images_with_boxes": sum(row["predicted"] > 0 for row in none_rows),
        "per_image": per_image, "figures": ["crystals.png"],
    }
    _sheet(out / "crystals.png", truth, predicted, previews, widths, per_image, certainty)
    return section


def _rates(tp: int, fp: int, fn: int, ignored: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn, "ignored": ignored,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}


def _sheet(path: Path, truth: list[ImageTruth], predicted: list[list[CrystalBox]],
           previews: list[np.ndarray], widths: list[int], per_image: list[dict[str, Any]],
           certainty: str) -> None:
    """The contact sheet: each image's preview with its true and predicted boxes, the images
    with the most misses and false boxes (IoU 0.3) first."""
    from . import outline_sheet

    def wrong(k: int) -> int:
        m = per_image[k][f"iou{IOU_THRESHOLDS[0]}"]
        return int(m["fp"] + m["fn"])

    order = sorted(range(len(truth)), key=lambda k: -wrong(k))
    tiles = []
    for k in order:
        counted, ignored = truth[k].split(certainty)
        scale = previews[k].shape[1] / widths[k] if widths[k] else 1.0
        m = per_image[k][f"iou{IOU_THRESHOLDS[0]}"]
        caption = (f"{Path(truth[k].name).name} tp {m['tp']} fp {m['fp']} fn {m['fn']}"
                   + (" (none)" if truth[k].checked_none else ""))
        tiles.append(outline_sheet.boxes_tile(
            previews[k], [([b.box for b in counted], TRUE_COLOUR),
                          ([b.box for b in ignored], IGNORED_COLOUR),
                          ([c.box for c in predicted[k]], PREDICTED_COLOUR)], scale, caption))
    outline_sheet.write_tiles(path, tiles)


def render_markdown(section: dict[str, Any]) -> list[str]:
    """evaluate's report.md lines for the crystals section."""
    def fmt(v: float) -> str:
        return "n/a" if v != v else f"{v:.3f}"

    which = ("sure boxes only, doubtful ones are regions to ignore"
             if section["certainty"] == "sure" else "sure and doubtful boxes alike")
    lines = ["## Crystal boxes", "",
             f"{section['images']} images of `{section['truth']}` scored with "
             f"{section['runtime']} (the deployed path); {section['true_boxes']} true boxes "
             f"({which}; {section['ignored_regions']} ignored regions), "
             f"{section['predicted_boxes']} predicted.",
             "", "| IoU | TP | FP | FN | ignored | precision | recall |",
             "|---|---|---|---|---|---|---|"]
    for t, r in section["by_iou"].items():
        lines.append(f"| {t} | {r['tp']} | {r['fp']} | {r['fn']} | {r['ignored']} | "
                     f"{fmt(r['precision'])} | {fmt(r['recall'])} |")
    lines += ["", f"Count error (mean |predicted - true| boxes per image): "
                  f"{section['count_mae']:.2f}", "",
              f"Boxes on none images (checked to hold no crystal): "
              f"{section['boxes_on_none_images']} on {section['none_images_with_boxes']} of "
              f"{section['none_images']} images", "",
              "True boxes green (ignored regions yellow), predicted magenta, worst first:", "",
              "![crystals](crystals.png)", ""]
    return lines
