"""`edgecrystal evaluate DATA --crystals CSV`: how well the crystal model's boxes match boxes a
person drew, through the deployed path (the bundle's ONNX on ONNX Runtime, opened by
session.open_pipeline as `score` opens it: the same decoding, finder, crop and crystal stage).

The truth (edgecrystal/crystal_truth.py): a CSV of drawn boxes (the layout of
../shared/real-samples/crystals.csv; `kind none`: an image checked to hold no crystal), or
for synthetic data (`--crystals masks`) the crystal masks DATA's labels.csv names in a
`crystals` column, each mask's 8-connected components the true boxes.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .crystal_boxes import CrystalBox, area, intersection, iou
from .crystal_truth import MASK_COLUMN, ImageTruth, TrueBox, read_truth, truth_from_masks
from .errors import DataError, UsageError

IOU_THRESHOLDS = (0.3, 0.5)
CERTAINTIES = ("sure", "all")
# `--crystals masks`: the true boxes from DATA's crystal masks (labels.csv `crystals` column).
FROM_MASKS = "masks"
BATCH = 8
# A predicted box at least this share inside a region to ignore is neither right nor wrong.
IGNORE_SHARE = 0.5
# RGB colours of the contact sheet.
TRUE_COLOUR = (0, 220, 0)
IGNORED_COLOUR = (255, 210, 0)
PREDICTED_COLOUR = (255, 0, 255)


def _inside_share(a: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> float:
    """The share of box `a` inside `region`."""
    return intersection(a, region) / area(a) if area(a) else 0.0


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
        truth = truth_from_masks([(r.image, r.meta.get(MASK_COLUMN, "")) for r in ds.records],
                                 ds.root)
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
