"""`edgecrystal evaluate`: the paper's Table 1 for a bundle on a (held-out) data set.

Finder: Dice and IoU per image (finder output at its resolution, mapped back to the image's size
by preprocess.mask_to_image, thresholded at the bundle's threshold), mean and standard deviation,
from the finder's FP32 ONNX in the runtime's ONNX Runtime runner (its Keras model in
keras_backend's runner where it has no ONNX yet). Classifier: ROC AUC per class (one against
the rest) and macro, crystals against the rest, accuracy, crystal recall, confusion matrix, and
worst.png (per true class the images whose own class scored lowest, with the drop the finder
cut). The classifier is scored
through the deployed path when the bundle has ONNX variants: the image files through
pipeline.Pipeline on ONNX Runtime runners (the runtime's decoding, finder, crop step and
classifier, at --precision, opened by session.open_pipeline as `score` opens it), which is
what `score` and `serve` give; a bundle without them (freshly trained, before build-engines) is
scored through the same pipeline on its Keras models (the session's keras backend), and the
report says which. Writes report.md, report.json, roc.png, confusion.png, worst.png and
outlines.png (drawn vs found drop outline per image, worst Dice first). DATA may be real photos
with hand-drawn masks (masks/manifest.csv, see dataset.py), labels.csv or class folders; without
a bundle the shipped default bundle is evaluated. With `--crystals CSV` (boxes drawn around the
crystals), the bundle's crystal model too, through the same deployed path: box precision and
recall, count error, boxes on images without crystals and crystals.png (crystal_eval.py).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .atomic import write_json, write_text
from .bundle import Bundle
from .dataset import load_dataset
from .errors import DataError, UsageError
from .interface import REFERENCE_BACKEND
from .metrics import json_safe
from .runtime.base import Runner

log = logging.getLogger(__name__)


CRYSTALS = "crystals"
WORST_PER_CLASS = 5


def evaluate(data_dir: str | Path, bundle: str | Path | None, out: str | Path,
             verbose: int = 0, precision: str = "fp32", crystals: str | Path | None = None,
             crystal_certainty: str = "sure") -> dict[str, Any]:
    from . import outline_sheet

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} is a file, not a folder")
    if bundle is None:
        from .pretrained import default_bundle_path

        bundle = default_bundle_path()
    b = Bundle.open(bundle)
    b.check_preprocess()
    if not (b.has("finder") or b.has("classifier")):
        raise DataError(f"bundle {b.root} has neither a finder nor a classifier to evaluate")
    try:
        ds = load_dataset(data_dir)
    except DataError:
        if crystals is None:
            raise
        ds = None  # only crystal boxes to evaluate: DATA holds the images the CSV names
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"bundle": str(b.root), "bundle_fingerprint": b.fingerprint,
                              "data": ds.summary() if ds else {"root": str(data_dir),
                                                               "images": None},
                              "classes": b.classes}
    if crystals is not None:
        from .crystal_eval import evaluate_crystals

        report["crystals"] = evaluate_crystals(b, crystals, Path(data_dir), out, precision,
                                               crystal_certainty)
    if ds is None:
        write_json(out / "report.json", json_safe(report))
        write_text(out / "report.md", render_markdown(report))
        return report

    masked = ds.with_masks() if b.has("finder") else []
    if masked:
        from .train import data

        if verbose:
            log.info("finder: %d images with masks", len(masked))
        samples = data.load_samples(masked, masks=True)
        size, threshold = b.input_size("finder"), b.threshold
        with _finder_runner(b) as runner:
            probs = data.predict_masks(runner.predict, samples, size)
        scores = metrics.mask_table(probs, [s.mask for s in samples], threshold, keep_masks=True)
        names = [str(s.path.relative_to(ds.root)) if s.path.is_relative_to(ds.root)
                 else str(s.path) for s in samples]
        worst_first = sorted(range(len(samples)), key=lambda k: scores["dice"][k])
        outline_sheet.write_sheet(
            out / "outlines.png", [s.rgb for s in samples], [s.mask for s in samples],
            scores["masks"], [f"{n} Dice {d:.3f}" for n, d in zip(names, scores["dice"],
                                                                    strict=True)],
            order=worst_first)
        report["finder"] = {
            **{k: v for k, v in scores.items() if k not in ("dice", "iou", "masks")},
            "dice_min": min(scores["dice"]),
            "below_half": sum(d < 0.5 for d in scores["dice"]),
            "input_size": size, "threshold": threshold, "runtime": f"{runner.backend} fp32",
            "per_image": [{"image": n, "dice": d, "iou": i} for n, d, i in
                          zip(names, scores["dice"], scores["iou"], strict=True)],
            "figures": ["outlines.png"],
        }

    if b.has("classifier"):
        records = [r for r in ds.records if r.label]
        if records:
            report["classifier"] = _classifier(b, ds, records, out, precision,
                                               verbose)

    if not {"finder", "classifier", "crystals"} & set(report):
        raise DataError(f"nothing to evaluate: {ds.root} has no masks for the finder and no "
                        "labels for the classifier")
    write_json(out / "report.json", json_safe(report))
    write_text(out / "report.md", render_markdown(report))
    return report


def _finder_runner(b: Bundle) -> Runner:
    """The finder in the runner that serves it: its FP32 ONNX variant in ONNX Runtime (what
    `score` runs on the CPU), else (no ONNX yet) its Keras model. A runner, not a pipeline: a
    bundle may hold a finder without a classifier, or one its classifier does not crop with."""
    from .keras_backend import KerasRunner
    from .runtime.onnxruntime_runner import OnnxRuntimeRunner

    if b.variant_for("finder", "fp32", "onnxruntime") is not None:
        return OnnxRuntimeRunner(b.onnx_variant("finder", "fp32"))
    log.info("bundle %s has no ONNX finder: measuring its Keras model", b.root)
    return KerasRunner(b.model_file("finder"))


def _classifier(b: Bundle, ds: Any, records: list[Any], out: Path, precision: str,
                verbose: int) -> dict[str, Any]:
    """The classifier's figures on the labelled `records` (see the module's docstring)."""
    from . import report_plots

    section = b.require("classifier")
    crop = str(section.get("crop", "finder"))
    size = int(section["input_size"])
    classes = b.classes
    unknown = sorted({r.label for r in records if r.label} - set(classes))
    if unknown:
        raise DataError(f"unknown class label(s) {', '.join(unknown)} in {ds.root} "
                        f"(the bundle knows {', '.join(classes)})")
    y = np.array([classes.index(r.label) for r in records], dtype=int)
    names = [_name(r.image, ds.root) for r in records]
    if b.variant_for("classifier", precision, "onnxruntime") is not None:
        backend = "onnxruntime"
    else:
        log.info("bundle %s has no ONNX classifier at %s: scoring the Keras models (run "
                 "`edgecrystal build-engines` to evaluate the deployed path)", b.root, precision)
        backend = REFERENCE_BACKEND
    if verbose:
        log.info("classifier: %d labelled images through %s %s, crop=%s", len(records),
                 backend, precision, crop)
    probs, tiles, hits, failed = _runtime_probs(b, [r.image for r in records], backend,
                                                precision)
    if failed:  # measured without them, and said: one broken file must not void the rest
        scored = [k for k, r in enumerate(records) if r.image not in failed]
        y, names = y[scored], [names[k] for k in scored]
        log.warning("%d of %d labelled images could not be scored and are left out (first: "
                    "%s: %s); report.json lists them", len(failed), len(records),
                    _name(next(iter(failed)), ds.root), next(iter(failed.values())))
    runtime = (f"onnxruntime {precision}" if backend == "onnxruntime"
               else "keras (no ONNX variant)")
    pred = probs.argmax(axis=1)
    report_plots.roc_figure(y, probs, classes, out / "roc.png",
                            title=f"ROC ({runtime}, crop={crop}, n={len(y)})")
    cm = metrics.confusion_matrix(y, pred, len(classes))
    report_plots.confusion_figure(cm, classes, out / "confusion.png")
    result: dict[str, Any] = {
        "roc_auc": metrics.roc_auc_ovr(y, probs, classes),
        "accuracy": metrics.accuracy(y, pred),
        "confusion_matrix": cm.tolist(), "images": len(y), "runtime": runtime,
        "not_scored": [{"image": _name(path, ds.root), "reason": reason}
                       for path, reason in failed.items()],
        "crop": crop, "input_size": size, "figures": ["roc.png", "confusion.png"],
        "per_image": [{"image": n, "label": classes[t], "predicted": classes[p],
                       "scores": {c: float(v) for c, v in zip(classes, row, strict=True)}}
                      for n, t, p, row in zip(names, y, pred, probs, strict=True)],
    }
    if CRYSTALS in classes:
        k = classes.index(CRYSTALS)
        result["crystals_vs_rest_auc"] = result["roc_auc"][CRYSTALS]
        is_crystal = y == k
        result["crystal_recall"] = (float((pred[is_crystal] == k).mean())
                                    if is_crystal.any() else math.nan)
        if hits is not None:  # what the result files say: crystals_hit at the bundle's threshold
            result["crystals_hit"] = {
                "threshold": b.confidence().crystals_threshold,
                "recall": float(hits[is_crystal].mean()) if is_crystal.any() else math.nan,
                "hits": int(hits.sum()), "crystal_drops_hit": int(hits[is_crystal].sum()),
                "crystal_drops": int(is_crystal.sum()),
                "precision": float(is_crystal[hits].mean()) if hits.any() else math.nan}
    _worst_sheet(out / "worst.png", tiles, y, probs, classes, names)
    result["figures"].append("worst.png")
    return result


def _name(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _runtime_probs(b: Bundle, paths: list[Path], backend: str, precision: str
                   ) -> tuple[np.ndarray, list[tuple[np.ndarray, Any]], np.ndarray | None,
                              dict[Path, str]]:
    """Class scores of each image file through the pipeline that `score` runs (the session's,
    on `backend`), per image a preview with the outline of the drop it cut (None when no drop
    was found), whether each is a crystals hit (None when the classes have no crystals), and
    the files that could not be scored (path: reason; not in the other three). None scored
    at all is a DataError."""
    from . import keras_backend
    from .session import open_pipeline

    keras_backend.plug()  # a bundle without ONNX variants is measured on its Keras models
    probs, tiles, hits, failed = [], [], [], {}
    with open_pipeline(b, backend=backend, precision=precision, outlines=True) as pipeline:
        for start in range(0, len(paths), 8):
            for path, r in zip(paths[start:start + 8], pipeline.score(paths[start:start + 8]),
                               strict=True):
                if not r.ok:
                    failed[path] = str(r.error_reason)
                    continue
                probs.append([r.scores[c] for c in b.classes])
                tiles.append(_preview_mask(r))
                hits.append(r.crystals_hit)
    if not probs:
        first = next(iter(failed.items()), (None, "no images"))
        raise DataError(f"no labelled image could be scored (first: {first[0]}: {first[1]})")
    flags = None if None in hits else np.array(hits, dtype=bool)
    return np.array(probs, dtype=np.float64), tiles, flags, failed


def _preview_mask(r: Any) -> tuple[np.ndarray, Any]:
    """The scored image's preview and the found drop as a mask at the preview's size."""
    import cv2

    preview = r.preview
    found = np.zeros(preview.shape[:2], np.uint8)
    if r.outline is not None and r.width:
        scale = preview.shape[1] / r.width
        cv2.fillPoly(found, [np.round(r.outline * scale).astype(np.int32)], 1)
    return preview, found


def _worst_sheet(path: Path, tiles: list[tuple[np.ndarray, Any]], y: np.ndarray,
                 probs: np.ndarray, classes: list[str], names: list[str]) -> None:
    """Per true class, the images whose own class scored lowest (worst first), with the drop
    the finder cut outlined: where the classifier fails, at a glance."""
    from . import outline_sheet

    order: list[int] = []
    for k in range(len(classes)):
        members = [i for i in range(len(y)) if y[i] == k]
        order += sorted(members, key=lambda i: probs[i, k])[:WORST_PER_CLASS]
    captions = [f"{classes[t]} p={probs[i, t]:.2f} -> {classes[int(probs[i].argmax())]} "
                f"{Path(n).name}" for i, (t, n) in enumerate(zip(y, names, strict=True))]
    outline_sheet.write_sheet(path, [t[0] for t in tiles], [None] * len(tiles),
                              [t[1] for t in tiles], captions, order=order)


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# edgecrystal evaluation", "",
             f"Bundle: `{report['bundle']}` (fingerprint {report['bundle_fingerprint']})  ",
             f"Data: `{report['data']['root']}`"
             + (f", {report['data']['images']} images" if report["data"]["images"] else ""),
             ""]
    f = report.get("finder")
    if f:
        lines += ["## Finder (Table 1 of the paper)", "",
                  f"{f['images']} images; finder at {f['input_size']} px, mask mapped back to "
                  f"each image's size, threshold {f['threshold']}.", "",
                  "| metric | mean | std |", "|---|---|---|",
                  f"| Dice | {f['dice_mean']:.4f} | {f['dice_std']:.4f} |",
                  f"| IoU | {f['iou_mean']:.4f} | {f['iou_std']:.4f} |", "",
                  f"Lowest Dice {f['dice_min']:.4f}; {f['below_half']} image(s) below 0.5.", "",
                  "| image | Dice | IoU |", "|---|---|---|"]
        lines += [f"| {row['image']} | {row['dice']:.4f} | {row['iou']:.4f} |"
                  for row in sorted(f["per_image"], key=lambda r: r["dice"])]
        lines += ["", "Drawn drop outline green, the finder's magenta, worst first:", "",
                  "![outlines](outlines.png)", ""]
    c = report.get("classifier")
    if c:
        classes = report["classes"]
        lines += ["## Classifier", "",
                  f"{c['images']} images, scored with {c.get('runtime', 'keras')}; crop mode "
                  f"`{c['crop']}`, input {c['input_size']} px.", ""]
        if c.get("not_scored"):
            lines += [f"**{len(c['not_scored'])} labelled image(s) could not be scored and are "
                      "left out:** " + "; ".join(f"`{n['image']}` ({n['reason']})"
                                                  for n in c["not_scored"]), ""]
        lines += ["| class | ROC AUC |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in c["roc_auc"].items() if k != "macro"]
        lines += [f"| **macro** | **{_fmt(c['roc_auc']['macro'])}** |", ""]
        if "crystals_vs_rest_auc" in c:
            lines += [f"Crystals vs rest ROC AUC: {_fmt(c['crystals_vs_rest_auc'])}; crystal "
                      f"recall (crystals drops labelled crystals): {_fmt(c['crystal_recall'])}",
                      ""]
        hit = c.get("crystals_hit")
        if hit:
            lines += [f"crystals_hit (the result files' flag; threshold "
                      f"{_fmt(hit['threshold']) if hit['threshold'] is not None else 'none'}): "
                      f"{hit['crystal_drops_hit']} of {hit['crystal_drops']} crystal drops "
                      f"(recall {_fmt(hit['recall'])}), {hit['hits']} hits in all (precision "
                      f"{_fmt(hit['precision'])})", ""]
        lines += [f"Accuracy: {c['accuracy']:.4f}", "", "Confusion matrix (rows: true, columns: "
                  "predicted):", "", "| | " + " | ".join(classes) + " |",
                  "|---" * (len(classes) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(classes, c["confusion_matrix"], strict=True)]
        if "worst.png" in c["figures"]:
            lines += ["", f"Worst-scored images per true class (the {WORST_PER_CLASS} whose own "
                      "class scored lowest; the drop the finder cut outlined):", "",
                      "![worst](worst.png)"]
        lines += ["", "![ROC](roc.png) ![confusion](confusion.png)", ""]
    if report.get("crystals"):
        from .crystal_eval import render_markdown as crystal_lines

        lines += crystal_lines(report["crystals"])
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

