"""Honest confidence: the calibration applied after the classifier, the crystals operating
threshold, and when a drop is uncertain. numpy only: the pipeline applies it on every batch.

A bundle's `confidence` section (bundle.json) holds what was fitted on held-out wells through
the deployed path (ONNX FP32, edgecrystal/confidence_fit.py):

    {"temperature": T, "crystals_threshold": t, "recall_target": 0.95,
     "classifier_fp32_sha256": <the FP32 ONNX it was fitted on>, "fitted": ..., "data": ...,
     "metrics": {...}}

Calibration is temperature scaling on the model's own output: the classifier ends in a softmax,
so its log-probabilities are its logits up to a constant per image, and softmax(log p / T) is
the calibrated score (T > 1 softens an over-confident model). The crystals threshold is on the
calibrated crystals score and is chosen for recall: a missed crystal costs most.
A bundle without a fit (or whose classifier changed since) scores as before: T = 1, and a
crystals hit is a crystals label.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

CRYSTALS = "crystals"
SECTION = "confidence"
# The recall on held-out crystals that the default operating threshold keeps.
DEFAULT_RECALL = 0.95
# When a drop is uncertain (the one place these bounds live): its top calibrated score is
# below UNCERTAIN_TOP, or the top two are closer than UNCERTAIN_MARGIN (both bite: a top score
# of 0.55 against 0.40 passes the first and fails the second).
UNCERTAIN_TOP = 0.5
UNCERTAIN_MARGIN = 0.2
# Temperatures searched when fitting (log-spaced; the fit is one-dimensional and cheap).
TEMPERATURES = np.exp(np.linspace(math.log(0.05), math.log(20.0), 241))
_TINY = 1e-7


@dataclass(frozen=True)
class Confidence:
    """What the pipeline applies after the classifier for one bundle."""

    temperature: float = 1.0
    crystals_threshold: float | None = None  # None: a crystals hit is a crystals label
    fitted: bool = False

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        return calibrate(probs, self.temperature)

    def crystals_hit(self, classes: tuple[str, ...] | list[str],
                     calibrated: np.ndarray) -> np.ndarray | None:
        """Per row: is it a crystals hit (None when the class list has no crystals): its label
        is crystals, or its crystals score reaches the threshold (so a hit list is never
        shorter than the crystals labels)."""
        if CRYSTALS not in classes:
            return None
        column = list(classes).index(CRYSTALS)
        scores = np.asarray(calibrated)
        labelled = scores.argmax(axis=1) == column
        if self.crystals_threshold is None:
            return labelled
        return np.asarray(labelled | (scores[:, column] >= self.crystals_threshold))

    def as_record(self) -> dict[str, float | bool | None]:
        """What result files say about it (model.confidence)."""
        return {"temperature": round(self.temperature, 6),
                "crystals_threshold": None if self.crystals_threshold is None
                else round(self.crystals_threshold, 6),
                "fitted": self.fitted}


def from_section(section: object, classifier_fp32: str | None) -> Confidence:
    """The confidence a bundle's section describes; the unfitted default when there is none
    (or no number for its temperature) or it was fitted on another classifier FP32 ONNX than
    the current one (retrained and rebuilt, not refitted)."""
    temperature = _number(section.get("temperature")) if isinstance(section, dict) else None
    if not isinstance(section, dict) or temperature is None:
        return Confidence()
    fitted_for = section.get("classifier_fp32_sha256")
    if fitted_for and classifier_fp32 and fitted_for != classifier_fp32:
        return Confidence()
    return Confidence(temperature, _number(section.get("crystals_threshold")), fitted=True)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row; T = 1 gives the scores back unchanged."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p
    logits = np.log(np.clip(p, _TINY, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def uncertain(calibrated_row: np.ndarray | list[float], *, label: str | None = None,
              crystal_score: float | None = None, agree_score: float | None = None) -> bool:
    """Low top score, or the top two close, or the two models disagree: a person should look.

    Disagreement (the crystal model, where the bundle has one): its most certain box scored
    `crystal_score` >= `agree_score` while the classifier's `label` is not crystals. Only for
    a class list with crystals (the caller passes `label` then): without that class no label
    could agree. `crystal_score` None: no box, or no crystal model."""
    if (label is not None and agree_score is not None and crystal_score is not None
            and crystal_score >= agree_score and label != CRYSTALS):
        return True
    ranked = np.sort(np.asarray(calibrated_row, dtype=np.float64))[::-1]
    if ranked.size == 0:
        return True
    second = ranked[1] if ranked.size > 1 else 0.0
    return bool(ranked[0] < UNCERTAIN_TOP or ranked[0] - second < UNCERTAIN_MARGIN)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(p, _TINY, 1.0)).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top score: |accuracy - confidence| per confidence bin, weighted by bin size."""
    p = np.asarray(probs)
    top = p.max(axis=1)
    right = p.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (top > lo) & (top <= hi)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - top[inside].mean())
    return float(total)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature with the lowest NLL on held-out (probs, labels); ties keep T nearest 1."""
    losses = [nll(calibrate(probs, float(t)), labels) for t in TEMPERATURES]
    best = min(losses)
    near = [t for t, loss in zip(TEMPERATURES, losses, strict=True) if loss <= best + 1e-9]
    return float(min(near, key=lambda t: abs(math.log(t))))


def recall_threshold(crystal_scores: np.ndarray, recall: float = DEFAULT_RECALL) -> float:
    """The highest threshold that still calls at least `recall` of these (true crystals') scores
    a hit: the k-th highest score, k = ceil(recall x n)."""
    scores = np.sort(np.asarray(crystal_scores, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("no crystals to choose a threshold on")
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be in (0, 1], not {recall}")
    k = max(1, math.ceil(recall * scores.size - 1e-9))
    return float(scores[k - 1])
