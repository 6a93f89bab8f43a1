"""The plate view's grid: SBS formats (96, 384, 1536 wells) large enough for the wells seen.

When the rows seen need one format and the columns another (rows A-L but never a column past 8:
a 96-well plate whose names were read the wrong way round), the grid says so instead of
silently drawing the bigger plate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..index.rows import ImageRow
from ..index.store import effective_label

FORMATS = ((8, 12), (16, 24), (32, 48))  # rows, columns


@dataclass
class Cell:
    well: str
    drops: list[ImageRow] = field(default_factory=list)

    @property
    def shown(self) -> ImageRow | None:
        """The drop the cell stands for: a crystals label first, then the highest crystals
        score (a person looking for hits wants the best drop of the well)."""
        if not self.drops:
            return None
        return max(self.drops, key=lambda r: (effective_label(r) == "crystals",
                                              (r.get("scores") or {}).get("crystals", -1.0)))


@dataclass
class Grid:
    rows: list[str]
    columns: list[int]
    cells: dict[str, Cell]
    warning: str | None = None

    @property
    def size(self) -> int:
        return len(self.rows) * len(self.columns)


def plate_grid(rows: list[ImageRow]) -> Grid:
    cells: dict[str, Cell] = {}
    max_row = max_column = 0
    for row in rows:
        well = str(row.get("well") or "")
        match = re.fullmatch(r"([A-Z]{1,2})(\d{2})", well)
        if not match:
            continue
        cells.setdefault(well, Cell(well)).drops.append(row)
        max_row = max(max_row, _row_number(match[1]))
        max_column = max(max_column, int(match[2]))
    n_rows, n_columns = next(((r, c) for r, c in FORMATS if max_row <= r and max_column <= c),
                             FORMATS[-1])
    names = [_row_name(i) for i in range(1, n_rows + 1)]
    for name in names:
        for column in range(1, n_columns + 1):
            cells.setdefault(f"{name}{column:02d}", Cell(f"{name}{column:02d}"))
    return Grid(names, list(range(1, n_columns + 1)), cells,
                _misfit_warning(max_row, max_column))


def _misfit_warning(max_row: int, max_column: int) -> str | None:
    """A line when the rows seen and the columns seen fit different plate formats."""
    by_rows = next((r * c for r, c in FORMATS if max_row <= r), None)
    by_columns = next((r * c for r, c in FORMATS if max_column <= c), None)
    if not max_row or by_rows == by_columns:
        return None
    return (f"the wells seen (rows A-{_row_name(max_row)}, columns 1-{max_column}) fit no one "
            f"plate format: the rows need a {by_rows or 'bigger'}-well plate, the columns a "
            f"{by_columns or 'bigger'}-well one; check how the imager's names are read "
            "(docs/review.md)")


def _row_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _row_name(number: int) -> str:
    return chr(ord("A") + number - 1) if number <= 26 else "A" + chr(ord("A") + number - 27)
