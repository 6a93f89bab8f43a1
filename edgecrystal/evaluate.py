"""`edgecrystal evaluate`: the paper's Table 1 for a bundle on a (held-out) data set.

Finder: Dice and IoU per image (finder output at its resolution, mapped back to the image's size
by preprocess.mask_to_image, thresholded at the bundle's threshold), mean and standard deviation.
Classifier: ROC AUC per class (one against the rest) and macro, accuracy, confusion matrix, on
crops made with the bundle's crop mode. Writes report.md, report.json, roc.png, confusion.png.
Uses the Keras models (the reference); the runtime's own accuracy checks live with the backends.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_json, write_text
from .bundle import Bundle
from .dataset import load_dataset
from .errors import DataError, UsageError
from .metrics import json_safe

log = logging.getLogger(__name__)


def evaluate(data_dir: str | Path, bundle: str | Path, out: str | Path,
             verbose: int = 0) -> dict[str, Any]:
    from . import models, report_plots
    from .train import classifier as clf
    from .train import data
    from .train import finder as fnd

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} is a file, not a folder")
    b = Bundle.open(bundle)
    b.check_preprocess()
    if not (b.has("finder") or b.has("classifier")):
        raise DataError(f"bundle {b.root} has neither a finder nor a classifier to evaluate")
    ds = load_dataset(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"bundle": str(b.root), "bundle_fingerprint": b.fingerprint,
                              "data": ds.summary(), "classes": b.classes}

    finder_model = None
    if b.has("finder"):
        finder_model = clf.load_finder(b)
        masked = ds.with_masks()
        if masked:
            if verbose:
                log.info("finder: %d images with masks", len(masked))
            samples = data.load_samples(masked, masks=True)
            scores = fnd.mask_scores(finder_model[0], samples, finder_model[1], finder_model[2])
            report["finder"] = {
                **{k: v for k, v in scores.items() if k not in ("dice", "iou")},
                "input_size": finder_model[1], "threshold": finder_model[2],
                "per_image": [{"image": str(s.path.relative_to(ds.root)) if s.path.is_relative_to(
                    ds.root) else str(s.path), "dice": d, "iou": i}
                    for s, d, i in zip(samples, scores["dice"], scores["iou"], strict=True)],
            }

    if b.has("classifier"):
        section = b.require("classifier")
        crop = str(section.get("crop", "finder"))
        size = int(section["input_size"])
        classes = b.classes
        records = [r for r in ds.records if r.label]
        if records:
            unknown = sorted({r.label for r in records if r.label} - set(classes))
            if unknown:
                raise DataError(f"unknown class label(s) {', '.join(unknown)} in {ds.root} "
                                f"(the bundle knows {', '.join(classes)})")
            if verbose:
                log.info("classifier: %d labelled images, crop=%s", len(records), crop)
            samples = data.load_samples(records, masks=crop == "manual")
            x = clf.crops_for(b, samples, crop, size, finder_model)
            y = data.label_indices(samples, classes)
            model = models.load_model(b.model_file("classifier"))
            scores = clf.score(model, x, y, classes)
            probs = scores.pop("probs")
            report_plots.roc_figure(y, probs, classes, out / "roc.png",
                                    title=f"ROC (crop={crop}, n={len(y)})")
            report_plots.confusion_figure(np.array(scores["confusion_matrix"]), classes,
                                          out / "confusion.png")
            report["classifier"] = {**scores, "crop": crop, "input_size": size,
                                    "figures": ["roc.png", "confusion.png"]}

    if "finder" not in report and "classifier" not in report:
        raise DataError(f"nothing to evaluate: {ds.root} has no masks for the finder and no "
                        "labels for the classifier")
    write_json(out / "report.json", json_safe(report))
    write_text(out / "report.md", render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# edgecrystal evaluation", "",
             f"Bundle: `{report['bundle']}` (fingerprint {report['bundle_fingerprint']})  ",
             f"Data: `{report['data']['root']}`, {report['data']['images']} images", ""]
    f = report.get("finder")
    if f:
        lines += ["## Finder (Table 1 of the paper)", "",
                  f"{f['images']} images; finder at {f['input_size']} px, mask mapped back to "
                  f"each image's size, threshold {f['threshold']}.", "",
                  "| metric | mean | std |", "|---|---|---|",
                  f"| Dice | {f['dice_mean']:.4f} | {f['dice_std']:.4f} |",
                  f"| IoU | {f['iou_mean']:.4f} | {f['iou_std']:.4f} |", ""]
    c = report.get("classifier")
    if c:
        classes = report["classes"]
        lines += ["## Classifier", "",
                  f"{c['images']} images; crop mode `{c['crop']}`, input {c['input_size']} px.", "",
                  "| class | ROC AUC |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in c["roc_auc"].items() if k != "macro"]
        lines += [f"| **macro** | **{_fmt(c['roc_auc']['macro'])}** |", "",
                  f"Accuracy: {c['accuracy']:.4f}", "", "Confusion matrix (rows: true, columns: "
                  "predicted):", "", "| | " + " | ".join(classes) + " |",
                  "|---" * (len(classes) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(classes, c["confusion_matrix"], strict=True)]
        lines += ["", "![ROC](roc.png) ![confusion](confusion.png)", ""]
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

