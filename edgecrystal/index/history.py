"""A drop's history across inspections: the labels in time order, the first inspection with
crystals, the inspections where the label changed, and how its largest crystal grew."""

from __future__ import annotations

from dataclasses import dataclass, field

from .rows import ImageRow
from .store import effective_label

CRYSTALS = "crystals"


@dataclass
class DropHistory:
    well: str | None
    drop: int | None
    inspections: list[ImageRow] = field(default_factory=list)

    @property
    def first_crystals(self) -> ImageRow | None:
        return next((r for r in self.inspections if effective_label(r) == CRYSTALS), None)

    @property
    def changes(self) -> list[tuple[ImageRow, ImageRow]]:
        """(before, after) for every inspection whose label differs from the one before."""
        return [(before, after) for before, after in zip(self.inspections, self.inspections[1:],
                                                     strict=False)
                if effective_label(before) != effective_label(after)]

    @property
    def measured(self) -> list[ImageRow]:
        """The inspections a crystal model looked at (largest_crystal_px known, 0 for none
        found), in time order: the drop's crystal growth."""
        return [r for r in self.inspections if r["largest_crystal_px"] is not None]

    @property
    def growth_px(self) -> int | None:
        """How much the largest crystal's longest side grew from the first measured inspection
        to the last, in original pixels; None with fewer than two measured."""
        sizes = [size for r in self.inspections if (size := r["largest_crystal_px"]) is not None]
        return sizes[-1] - sizes[0] if len(sizes) >= 2 else None

    def as_dict(self) -> dict[str, object]:
        first = self.first_crystals
        return {
            "well": self.well, "drop": self.drop,
            "first_crystals": _brief(first) if first else None,
            "changes": [{"from": effective_label(b), "to": effective_label(a),
                         "at": _brief(a)} for b, a in self.changes],
            "crystal_growth": {
                "growth_px": self.growth_px,
                "sizes": [{"inspection": r["inspection"], "inspected_at": _iso(r),
                           "largest_crystal_px": r["largest_crystal_px"],
                           "crystal_count": r["crystal_count"]} for r in self.measured],
            } if self.measured else None,
            "inspections": [_brief(r) for r in self.inspections],
        }


def drop_histories(rows: list[ImageRow]) -> list[DropHistory]:
    """Group rows (already in time order per drop) by well and drop."""
    histories: dict[tuple[str | None, int | str | None], DropHistory] = {}
    for row in rows:
        key = (row["well"], row["drop_number"]) if row["well"] else (None, row["path"])
        if key not in histories:
            histories[key] = DropHistory(row["well"], row["drop_number"])
        histories[key].inspections.append(row)
    return list(histories.values())


def _iso(row: ImageRow) -> str | None:
    when = row["inspected_at"]
    return when.isoformat() if when else None


def _brief(row: ImageRow) -> dict[str, object]:
    human_at = row["human_at"]
    return {
        "id": row["id"], "inspection": row["inspection"],
        "inspected_at": _iso(row),
        "label": effective_label(row), "model_label": row["label"],
        "human_label": row["human_label"], "human_by": row["human_by"],
        "human_at": human_at.isoformat() if human_at else None,
        "status": row["status"], "scores": row["scores"],
        "crystals_hit": row["crystals_hit"], "uncertain": row["uncertain"],
        "crystal_count": row["crystal_count"], "largest_crystal_px": row["largest_crystal_px"],
        "image": row["path"],
    }
