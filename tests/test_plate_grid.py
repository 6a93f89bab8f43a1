"""The plate page's grid: the smallest SBS format that holds the wells seen, and a warning when
the wells fit no one format (a name layout read the wrong way round draws a bigger plate)."""

from __future__ import annotations

from edgecrystal.ui.plate_grid import plate_grid


def rows_for(*wells: str) -> list[dict[str, object]]:
    return [{"well": well, "status": "ok", "scores": {"crystals": 0.5}} for well in wells]


def test_a_96_well_plate_draws_96_wells_without_a_warning() -> None:
    grid = plate_grid(rows_for("A01", "H12", "D06"))
    assert grid.size == 96 and grid.warning is None


def test_a_full_384_well_plate_draws_384_wells_without_a_warning() -> None:
    grid = plate_grid(rows_for("A01", "P24", "L08"))
    assert grid.size == 384 and grid.warning is None


def test_wells_that_fit_no_one_format_are_named() -> None:
    # A 96-well plate read transposed: rows up to L (a 384-well row), columns up to 08.
    grid = plate_grid(rows_for("A01", "L08", "C05"))
    assert grid.warning is not None
    assert "rows A-L" in grid.warning and "columns 1-8" in grid.warning
    assert "\n" not in grid.warning
