"""The INT8 accuracy gate: an INT8 variant against its FP32 source on held-out images, on this
machine (its CPU family: edgecrystal/cpu_isa.py), and the verdict that decides whether it may
run at all.

What is measured (the same numbers verify prints):
- classifier: label agreement (share of images whose top class is FP32's) and, per class,
  Spearman's rank correlation of the scores (thresholds and ROC curves use the order);
- finder and crystals (the probability-map models, interface.MAP_MODELS): Dice of the INT8 mask
  against the FP32 mask at the model's threshold, per image, averaged; the loss is 1 - that Dice
  (two empty masks agree: Dice 1). The crystal map has its own bound: its masks are small
  (a crystal is tens of pixels across where a drop is hundreds), so the one-pixel boundary
  shifts INT8 rounding makes weigh several times more in its Dice than in the finder's.

The bounds live here, in BOUNDS, and nowhere else; `build-engines --int8-gate` overrides them
(bounds_from). A variant outside them is recorded unusable in bundle.json, and score, serve and
bench refuse it in one line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecrystal import metrics
from edgecrystal.errors import UsageError
from edgecrystal.interface import MAP_MODELS


@dataclass(frozen=True)
class Bounds:
    min_agreement: float = 0.98  # classifier labels kept
    max_dice_loss: float = 0.01  # finder: 1 - Dice(INT8 mask, FP32 mask)
    min_rank_correlation: float = 0.95  # classifier: the lowest class's Spearman rho
    max_crystal_dice_loss: float = 0.05  # crystals: 1 - Dice(INT8 mask, FP32 mask)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


BOUNDS = Bounds()
# The bounds each model's verdict reads: a change of another model's bound does not re-gate it,
# and a record made before a bound existed still stands for the bounds it names.
_APPLY = {"finder": ("max_dice_loss",), "crystals": ("max_crystal_dice_loss",),
          "classifier": ("min_agreement", "min_rank_correlation")}
# --int8-gate names -> Bounds fields.
_NAMES = {"agreement": "min_agreement", "dice_loss": "max_dice_loss",
          "rank": "min_rank_correlation", "crystal_dice_loss": "max_crystal_dice_loss"}
# Held-out images the gate measures on (fewer where the data set has fewer left). One image
# moves the classifier's agreement by 1/GATE_IMAGES: at 64 the shipped classifier's ONNX Runtime
# variant read 0.969 where 320 held-out wells read 0.916, a bound of 0.98 a lucky draw away.
GATE_IMAGES = 256


def bounds_from(text: str | None) -> Bounds:
    """Bounds from `agreement=0.95,dice_loss=0.02,rank=0.9` (any subset; BOUNDS for the rest)."""
    if not text:
        return BOUNDS
    values: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        field = _NAMES.get(name.strip())
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if field is None or not 0.0 <= number <= 1.0:
            raise UsageError(f"--int8-gate takes {', '.join(n + '=X' for n in _NAMES)} with X "
                             f"between 0 and 1 (got {part.strip()!r})")
        values[field] = number
    return dataclasses.replace(BOUNDS, **values)


def same_bounds(model: str, recorded: dict[str, float] | None, bounds: Bounds) -> bool:
    """Whether a gate record's bounds are `bounds` for what `model`'s verdict reads."""
    wanted = bounds.as_dict()
    return recorded is not None and all(recorded.get(name) == wanted[name]
                                        for name in _APPLY.get(model, tuple(wanted)))


def measure(model: str, int8: np.ndarray, fp32: np.ndarray, threshold: float = 0.5
            ) -> dict[str, float]:
    """The gate's numbers for `model` ("finder", "classifier" or "crystals") from both
    variants' outputs (`threshold`: the map model's own)."""
    if model in MAP_MODELS:
        a, b = int8 >= threshold, fp32 >= threshold
        dice = float(np.mean([metrics.dice(x, y) for x, y in zip(a, b, strict=True)]))
        return {"agreement": float(np.mean(a == b)), "dice": dice, "dice_loss": 1.0 - dice}
    ranks = [metrics.rank_correlation(int8[:, i], fp32[:, i]) for i in range(fp32.shape[1])]
    finite = [r for r in ranks if not math.isnan(r)]
    return {"agreement": float(np.mean(int8.argmax(axis=1) == fp32.argmax(axis=1))),
            "min_rank_correlation": min(finite) if finite else math.nan}


def verdict(model: str, measured: dict[str, float], bounds: Bounds = BOUNDS) -> list[str]:
    """Why the variant is unusable (empty: usable)."""
    reasons = []
    if model in MAP_MODELS:
        loss = measured.get("dice_loss", math.nan)
        bound = bounds.max_crystal_dice_loss if model == "crystals" else bounds.max_dice_loss
        if not loss <= bound:
            reasons.append(f"{model} Dice loss {loss:.3f} > {bound:g}")
        return reasons
    agreement = measured.get("agreement", math.nan)
    if not agreement >= bounds.min_agreement:
        reasons.append(f"label agreement {agreement:.3f} < {bounds.min_agreement:g}")
    rank = measured.get("min_rank_correlation", math.nan)
    # A class whose FP32 scores do not vary has no order to keep (NaN): not INT8's fault.
    if not math.isnan(rank) and rank < bounds.min_rank_correlation:
        reasons.append(f"lowest class rank correlation {rank:.3f} < "
                       f"{bounds.min_rank_correlation:g}")
    return reasons


def gate_record(model: str, int8: np.ndarray, fp32: np.ndarray, family: str, held_out: bool,
                bounds: Bounds = BOUNDS, threshold: float = 0.5) -> dict[str, Any]:
    """What bundle.json keeps under the variant's "gate" (Bundle.set_int8_gate)."""
    measured = measure(model, int8, fp32, threshold)
    reasons = verdict(model, measured, bounds)
    return {"family": family, "usable": not reasons, "reasons": reasons, "images": len(int8),
            "held_out": held_out, "bounds": bounds.as_dict(), **measured}


def describe(model: str, variant: str, gate: dict[str, Any]) -> str:
    """One line: the verdict as build-engines, verify and the refusals print it."""
    if gate.get("usable"):
        return (f"{model} {variant}: INT8 gate passed on {gate.get('family')} "
                f"({gate.get('images')} {'held-out ' if gate.get('held_out') else ''}images)")
    return (f"{model} {variant}: INT8 gate failed on {gate.get('family')}: "
            f"{'; '.join(gate.get('reasons') or ['not measured'])}")
