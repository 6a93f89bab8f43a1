"""Metric arithmetic against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecrystal import metrics


def test_dice_and_iou_on_known_masks() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :4] = True  # 4 pixels
    b[0, 2:4] = True  # 2 pixels, both inside a
    b[1, 0] = True  # 1 pixel outside a
    # intersection 2, |a| 4, |b| 3, union 5
    assert metrics.dice(a, b) == pytest.approx(4 / 7)
    assert metrics.iou(a, b) == pytest.approx(2 / 5)
    assert metrics.dice(a, a) == 1.0 and metrics.iou(a, a) == 1.0
    assert metrics.dice(a, ~a) == 0.0 and metrics.iou(a, ~a) == 0.0
    empty = np.zeros((3, 3), bool)
    assert metrics.dice(empty, empty) == 1.0 and metrics.iou(empty, empty) == 1.0


def test_roc_auc_hand_computed() -> None:
    # Positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 3 of 4.
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert metrics.roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert metrics.roc_auc([1, 0], [0.2, 0.9]) == 0.0
    # A tie between a positive and a negative counts half.
    assert metrics.roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_roc_curve_ends_and_matches_rank_statistic() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200).astype(bool)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # rounded: many ties
    fpr, tpr = metrics.roc_curve(y, s)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    pos, neg = s[y], s[~y]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert metrics.auc(fpr, tpr) == pytest.approx(wins / (pos.size * neg.size))


def test_one_vs_rest_macro_and_missing_class() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = [0, 1, 1, 0]
    out = metrics.roc_auc_ovr(labels, probs, ["a", "b", "c"])
    # a: positives 0.8, 0.1 vs negatives 0.2, 0.6 -> wins 2 of 4
    assert out["a"] == pytest.approx(0.5)
    # b: positives 0.7, 0.3 vs negatives 0.1, 0.2 -> 4 of 4
    assert out["b"] == pytest.approx(1.0)
    assert math.isnan(out["c"])  # no image of class c: left out of the macro mean
    assert out["macro"] == pytest.approx(0.75)
    fpr, tpr = metrics.macro_roc_curve(labels, probs)
    assert metrics.auc(fpr, tpr) == pytest.approx(0.75, abs=0.02)


def test_confusion_accuracy_and_summaries() -> None:
    cm = metrics.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert metrics.accuracy([0, 0, 1, 2, 2], [0, 1, 1, 2, 0]) == pytest.approx(0.6)
    s = metrics.mean_std([1.0, 3.0, math.nan])
    assert s == {"mean": 2.0, "std": 1.0, "n": 2}
    assert metrics.json_safe({"x": np.float32(0.5), "y": [math.nan], "z": np.arange(2)}) == {
        "x": 0.5, "y": [None], "z": [0, 1]}
