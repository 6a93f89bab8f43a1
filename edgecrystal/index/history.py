"""A drop's history across inspections: the labels in time order, the first inspection with
crystals, and the inspections where the label changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .store import effective_label

CRYSTALS = "crystals"


@dataclass
class DropHistory:
    well: str | None
    drop: int | None
    inspections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first_crystals(self) -> dict[str, Any] | None:
        return next((r for r in self.inspections if effective_label(r) == CRYSTALS), None)

    @property
    def changes(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(before, after) for every inspection whose label differs from the one before."""
        return [(before, after) for before, after in zip(self.inspections, self.inspections[1:],
                                                     strict=False)
                if effective_label(before) != effective_label(after)]

    def as_dict(self) -> dict[str, Any]:
        first = self.first_crystals
        return {
            "well": self.well, "drop": self.drop,
            "first_crystals": _brief(first) if first else None,
            "changes": [{"from": effective_label(b), "to": effective_label(a),
                         "at": _brief(a)} for b, a in self.changes],
            "inspections": [_brief(r) for r in self.inspections],
        }


def drop_histories(rows: list[dict[str, Any]]) -> list[DropHistory]:
    """Group rows (already in time order per drop) by well and drop."""
    histories: dict[tuple[Any, ...], DropHistory] = {}
    for row in rows:
        key = (row["well"], row["drop_number"]) if row["well"] else (None, row["path"])
        if key not in histories:
            histories[key] = DropHistory(row["well"], row["drop_number"])
        histories[key].inspections.append(row)
    return list(histories.values())


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    when = row.get("inspected_at")
    human_at = row.get("human_at")
    return {
        "id": row["id"], "inspection": row.get("inspection"),
        "inspected_at": when.isoformat() if when else None,
        "label": effective_label(row), "model_label": row.get("label"),
        "human_label": row.get("human_label"), "human_by": row.get("human_by"),
        "human_at": human_at.isoformat() if human_at else None,
        "status": row.get("status"), "scores": row.get("scores", {}),
        "crystals_hit": row.get("crystals_hit"), "uncertain": row.get("uncertain"),
        "image": row["path"],
    }
