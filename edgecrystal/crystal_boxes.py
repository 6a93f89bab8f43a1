"""Crystals found in a drop: the boxes the crystal model's probability map gives, in the
original image's pixels, and the two numbers a user acts on (the largest crystal's size and
where to aim).

The contract between the crystal stage (pipeline) and what reports it (result file, summary
CSV, index, overlay, review page, history): a `Scored` carries `crystals: list[CrystalBox]`
when the bundle has a crystal model and None when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass

# A box counts as "as certain as the most certain one" within this share of its score: the
# target is the largest of those, so a big faint blob does not outvote a sharp crystal.
TARGET_SCORE_SHARE = 0.8


@dataclass(frozen=True)
class CrystalBox:
    """One crystal or tight cluster: `box` is (x0, y0, x1, y1) in original image pixels, x1 and
    y1 exclusive; `area_px` its crystal pixels (original pixel units); `score` the model's
    highest crystal probability inside it (0-1); `kind` a look when the model tells one."""

    box: tuple[int, int, int, int]
    area_px: int
    score: float
    kind: str | None = None

    @property
    def longest_side(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)

    @property
    def centre(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) // 2, (y0 + y1) // 2

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"box": list(self.box), "area_px": self.area_px,
                                  "score": round(self.score, 4)}
        if self.kind is not None:
            out["kind"] = self.kind
        return out


def largest_side(crystals: list[CrystalBox]) -> int:
    """The longest side of the largest crystal box, 0 when there is none."""
    return max((c.longest_side for c in crystals), default=0)


def target(crystals: list[CrystalBox]) -> tuple[int, int] | None:
    """Where to aim: the centre of the largest box among the most certain ones."""
    if not crystals:
        return None
    best = max(c.score for c in crystals)
    certain = [c for c in crystals if c.score >= TARGET_SCORE_SHARE * best]
    return max(certain, key=lambda c: (c.longest_side, c.score)).centre
