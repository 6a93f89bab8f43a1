"""Fitting a bundle's confidence (edgecrystal/confidence.py) on held-out labelled wells, through
the deployed path: the bundle's finder and classifier FP32 ONNX in ONNX Runtime, crops made by
the one pipeline, so what is fitted is what scoring will see.

`fit_confidence` is `edgecrystal bundle fit-confidence B --data HELDOUT` (any bundle, e.g. the
shipped one after a merge); `fit_after_training` is the last step of `train classifier`, on its
validation split. Both write bundle.json's `confidence` section and never touch the models.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .bundle import Bundle
from .confidence import (
    CRYSTALS,
    DEFAULT_RECALL,
    SECTION,
    UNCERTAIN_MARGIN,
    UNCERTAIN_TOP,
    Confidence,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    nll,
    recall_threshold,
    uncertain,
)
from .dataset import load_dataset
from .errors import DataError, UsageError
from .session import open_pipeline

log = logging.getLogger(__name__)


class FitSource(TypedDict, total=False):
    """Where the held-out images came from: a data set's root and layout, or a split's name."""

    root: str
    layout: str
    split: str


class FitData(FitSource, total=False):
    images: int  # scored
    unreadable: int
    classes: dict[str, int]  # images per class


class ModelVsCalibrated(TypedDict):
    model: float
    calibrated: float


class CrystalsFit(TypedDict):
    held_out: int
    recall: float
    precision: float | None  # None: no hit at all
    hits: int


class _FitMetrics(TypedDict):
    nll: ModelVsCalibrated
    ece: ModelVsCalibrated
    accuracy: float
    uncertain_fraction: float


class FitMetrics(_FitMetrics, total=False):
    crystals: CrystalsFit  # only with crystals among the held-out images


class UncertainBounds(TypedDict):
    top_below: float
    margin_below: float


class ConfidenceSection(TypedDict, total=False):
    """bundle.json's `confidence` section as a fit writes it: `temperature` (and the rest)
    only when it fitted; `note` says why not, or what is missing."""

    fitted: str  # when (UTC)
    on: str
    classifier_fp32_sha256: str | None
    data: FitData
    recall_target: float
    uncertain_bounds: UncertainBounds
    temperature: float
    crystals_threshold: float | None
    metrics: FitMetrics
    note: str
# Fewer held-out images than this fit nothing: a temperature from three images is noise.
MIN_IMAGES = 8
BATCH = 16


def fit_confidence(bundle_path: str | Path, data_dir: str | Path, *,
                   recall: float = DEFAULT_RECALL, threads: int = 0) -> ConfidenceSection:
    """Fit temperature and crystals threshold for the bundle on DATA (labels.csv or class
    folders: held-out wells, never the training images) and save them in bundle.json."""
    ds = load_dataset(data_dir)
    images = [(r.image, str(r.label)) for r in ds.records if r.label]
    return fit_on_images(Bundle.open(bundle_path), images, recall=recall, threads=threads,
                         source=FitSource(root=str(ds.root), layout=ds.layout))


def fit_after_training(bundle_path: str | Path, held_out: Sequence[dict[str, str]], *,
                       recall: float = DEFAULT_RECALL) -> ConfidenceSection:
    """The end of `train classifier`: export the FP32 ONNX the fit runs (as build-engines' first
    step does, kept there afterwards) and fit on the training run's validation images."""
    from .converters.keras_to_onnx import export_bundle

    bundle = Bundle.open(bundle_path)
    missing = [m for m in bundle.runtime_models() if not bundle.has(m)]
    if missing:  # e.g. --crop manual before any finder: nothing can score the wells yet
        return _save(bundle, ConfidenceSection(
            note=f"not fitted: the bundle has no {', '.join(missing)} to score with yet; train "
                 f"it, then run `edgecrystal bundle fit-confidence {bundle.root} --data "
                 "HELDOUT`"))
    export_bundle(bundle, models=bundle.runtime_models())
    images = [(Path(item["image"]), item["label"]) for item in held_out]
    return fit_on_images(Bundle.open(bundle_path), images, recall=recall,
                         source=FitSource(split="validation of train classifier"))


def train_and_fit(data_dir: str | Path, bundle_path: str | Path, *, fit: bool = True,
                  **train_options: Any) -> dict[str, Any]:
    """`train classifier`: train (train.train_classifier's options), then, with `fit`, fit the
    confidence on the validation split through the FP32 ONNX (result["confidence"])."""
    from .train import train_classifier

    result = train_classifier(data_dir, bundle_path, **train_options)
    if fit:
        result["confidence"] = fit_after_training(bundle_path, result["held_out"])
    return result


def fit_on_images(bundle: Bundle, images: Sequence[tuple[Path, str]], *,
                  recall: float = DEFAULT_RECALL, threads: int = 0,
                  source: FitSource | None = None) -> ConfidenceSection:
    """Score `images` (path, true label) with the bundle's FP32 ONNX, fit, save; returns the
    section written. Too few images: nothing is fitted and the section says so."""
    if not 0.0 < recall <= 1.0:
        raise UsageError(f"--recall must be above 0 and at most 1, not {recall}")
    classes = bundle.classes
    strangers = sorted({label for _, label in images if label not in classes})
    if strangers:
        raise DataError(f"labels {', '.join(strangers)} are not classes of bundle "
                        f"{bundle.root} ({', '.join(classes)})")
    probs, labels, failed = _model_scores(bundle, images, threads)
    data = FitData(**(source or FitSource()), images=len(labels), unreadable=failed,
                   classes={c: int((labels == k).sum()) for k, c in enumerate(classes)})
    section = ConfidenceSection(
        fitted=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        on="onnxruntime fp32",
        classifier_fp32_sha256=bundle.variant("classifier", "fp32").get("sha256"),
        data=data,
        recall_target=recall,
        uncertain_bounds=UncertainBounds(top_below=UNCERTAIN_TOP,
                                         margin_below=UNCERTAIN_MARGIN),
    )
    if len(labels) < MIN_IMAGES:
        section["note"] = (f"not fitted: {len(labels)} held-out image(s), at least {MIN_IMAGES} "
                           f"needed; run `edgecrystal bundle fit-confidence {bundle.root} "
                           "--data HELDOUT`")
        log.warning("confidence of %s %s", bundle.root, section["note"])
        return _save(bundle, section)
    temperature = fit_temperature(probs, labels)
    calibrated = calibrate(probs, temperature)
    section["temperature"] = round(temperature, 6)
    section["crystals_threshold"] = None
    metrics = FitMetrics(
        nll=ModelVsCalibrated(model=round(nll(probs, labels), 6),
                              calibrated=round(nll(calibrated, labels), 6)),
        ece=ModelVsCalibrated(model=round(expected_calibration_error(probs, labels), 6),
                              calibrated=round(expected_calibration_error(calibrated, labels),
                                               6)),
        accuracy=round(float((calibrated.argmax(axis=1) == labels).mean()), 6),
        uncertain_fraction=round(float(np.mean([uncertain(row) for row in calibrated])), 6),
    )
    if CRYSTALS in classes:
        column = classes.index(CRYSTALS)
        positives = labels == column
        if positives.any():
            threshold = recall_threshold(calibrated[positives, column], recall)
            # Not rounded: a threshold rounded up would lose the crystal it sits on.
            section["crystals_threshold"] = threshold
            hit = np.asarray(Confidence(temperature, threshold).crystals_hit(classes,
                                                                            calibrated))
            metrics["crystals"] = CrystalsFit(
                held_out=int(positives.sum()),
                recall=round(float(hit[positives].mean()), 6),
                precision=round(float(positives[hit].mean()), 6) if hit.any() else None,
                hits=int(hit.sum()))
        else:
            section["note"] = ("no crystals among the held-out images: no crystals threshold "
                               "(a crystals hit is a crystals label)")
    section["metrics"] = metrics
    return _save(bundle, section)


def _model_scores(bundle: Bundle, images: Sequence[tuple[Path, str]],
                  threads: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The model's own (uncalibrated) scores of the readable images, their labels, and how many
    could not be scored."""
    classes = bundle.classes
    rows: list[list[float]] = []
    labels: list[int] = []
    failed = 0
    with open_pipeline(bundle, backend="onnxruntime", precision="fp32",
                       threads=threads) as pipeline:
        for first in range(0, len(images), BATCH):
            batch = images[first : first + BATCH]
            for scored, (_, label) in zip(pipeline.score([p for p, _ in batch]), batch,
                                          strict=True):
                if not scored.ok:
                    failed += 1
                    continue
                rows.append([scored.model_scores[c] for c in classes])
                labels.append(classes.index(label))
    return (np.asarray(rows, dtype=np.float64).reshape(-1, len(classes)),
            np.asarray(labels, dtype=np.int64), failed)


def _save(bundle: Bundle, section: ConfidenceSection) -> ConfidenceSection:
    bundle.meta[SECTION] = section
    bundle.save()
    return section
