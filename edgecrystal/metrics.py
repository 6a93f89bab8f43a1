"""Accuracy figures of the paper's Table 1 and ROC analysis, in plain numpy.

Dice and IoU for the finder's masks; ROC curves, ROC AUC (one class against the rest, and their
macro mean), accuracy and the confusion matrix for the classifier. numpy only: the runtime and
verification tools reuse these without loading TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def dice(pred: np.ndarray, true: np.ndarray) -> float:
    """2|A and B| / (|A| + |B|) of two binary masks; two empty masks agree perfectly (1.0)."""
    a, b = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(pred: np.ndarray, true: np.ndarray) -> float:
    """|A and B| / |A or B| of two binary masks; two empty masks agree perfectly (1.0)."""
    a, b = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    union = int(np.logical_or(a, b).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(a, b).sum()) / union


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score threshold, from (0, 0) to (1, 1).

    Tied scores move the curve diagonally, as they must for the area to equal the
    Mann-Whitney probability. Needs at least one positive and one negative."""
    pos = np.asarray(positive, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs positives and negatives")
    order = np.argsort(-s, kind="mergesort")
    s, pos = s[order], pos[order]
    # Last index of each run of equal scores: the curve has one point per distinct threshold.
    ends = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(pos)[ends]
    fp = (ends + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a curve given by its points (trapezoids)."""
    x, y = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of one binary problem; NaN when the labels hold only one kind."""
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    return auc(*roc_curve(pos, scores))


def roc_auc_ovr(
    labels: Sequence[int] | np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Per-class ROC AUC (that class against the rest) and `macro`, their mean over the classes
    present in `labels` (a class absent from the labels has no AUC and is left out: NaN)."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    out = {name: roc_auc(y == k, p[:, k]) for k, name in enumerate(classes)}
    defined = [v for v in out.values() if not math.isnan(v)]
    out["macro"] = float(np.mean(defined)) if defined else math.nan
    return out


def macro_roc_curve(
    labels: Sequence[int] | np.ndarray, probs: np.ndarray, grid: int = 101
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the one-vs-rest ROC curves on a common FPR grid (the curve of the macro AUC)."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    fpr_grid = np.linspace(0.0, 1.0, grid)
    curves = []
    for k in range(p.shape[1]):
        positive = y == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr = roc_curve(positive, p[:, k])
        # Between thresholds the curve is linear; at a vertical step np.interp takes one end.
        curves.append(np.interp(fpr_grid, fpr, tpr, left=0.0, right=1.0))
    if not curves:
        return fpr_grid, np.full_like(fpr_grid, np.nan)
    tpr_mean = np.mean(curves, axis=0)
    tpr_mean[0] = 0.0
    return fpr_grid, tpr_mean


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two score vectors (ties get their mean rank): how well one
    precision's scores keep another's order, which is what thresholds and ROC curves use."""
    a, b = np.asarray(first, np.float64).ravel(), np.asarray(second, np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError("rank_correlation needs two score vectors of the same length >= 2")
    ranks_a, ranks_b = _mean_ranks(a), _mean_ranks(b)
    if ranks_a.std() == 0 or ranks_b.std() == 0:
        return float("nan")
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # Equal values share the mean of the ranks they span.
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(unique))
    counts = np.bincount(inverse, minlength=len(unique))
    return (sums / counts)[inverse]


def confusion_matrix(
    labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(predicted, dtype=int)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def accuracy(labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    y = np.asarray(labels, dtype=int)
    p = np.asarray(predicted, dtype=int)
    return float(np.mean(y == p)) if y.size else math.nan


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and (population) standard deviation, the way the paper's tables report them."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def mask_table(probs: Sequence[np.ndarray], truths: Sequence[np.ndarray | None],
               threshold: float, keep_masks: bool = False) -> dict[str, Any]:
    """The paper's Table 1 for a finder: Dice and IoU per image of its probabilities (at each
    image's size) thresholded against the drawn masks, their mean and standard deviation, over
    the images that have a mask. `keep_masks` adds the thresholded masks ("masks")."""
    pairs = [(p >= threshold, truth) for p, truth in zip(probs, truths, strict=True)
             if truth is not None]
    d = [dice(found, truth) for found, truth in pairs]
    i = [iou(found, truth) for found, truth in pairs]
    ds, is_ = mean_std(d), mean_std(i)
    out = {"dice_mean": ds["mean"], "dice_std": ds["std"], "iou_mean": is_["mean"],
           "iou_std": is_["std"], "images": len(probs), "dice": d, "iou": i}
    if keep_masks:
        out["masks"] = [p >= threshold for p in probs]
    return out


def json_safe(obj: Any) -> Any:
    """Plain JSON: NaN becomes null, numpy scalars and arrays become Python numbers and lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
