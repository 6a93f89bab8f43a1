"""The built-in imager layouts and the reader that tries them (and a site's own patterns).

Each layout looks at the image's path (file name and the folders above it) and either
understands it completely or not at all; there is no partial guessing from a token that merely
looks like a well.

Built in (docs/review.md shows an example of each):

- ``rock_maker``: Formulatrix Rock Imager / Rock Maker's image store,
  ``WellImages/<n>/plateID_<plate>/batchID_<batch>/wellNum_<n>/profileID_<p>/d<drop>_r<region>_<kind>.jpg``.
  The plate is Rock Maker's plate ID, the inspection its batch ID; wells are numbered row by
  row, so the well name needs the plate's column count (``rock_maker_columns``, 12 for the
  96-well SBS plate; a number past the plate's last well is not understood).
- ``xchem``: Diamond/XChem's export of Rock Maker images, ``<barcode>_<column><row>_<drop>.jpg``
  (``97wo_01A_1.jpg``: plate 97wo, well A01, drop 1) in a folder
  ``<barcode>_<YYYY-MM-DD>_<imager>...`` whose date is the inspection.
- ``minstrel``: Rigaku Minstrel / CrystalTrak,
  ``RMM3_01_<id>_<experiment>_<barcode>_<inspection>_<YYMMDD>_<column>_<row>_<drop>_<focus>_99_030_001_RDI.jpg``
  in ``<barcode>/<inspection>/``; the column (01-12), row (01-08) and drop fields are read as
  numbers (12_08_04: H12, drop 4; read the other way round it was L08, a well no 96-well
  plate has).
- ``synthetic``: ``edgecrystal synth --plate``, ``<plate>/A01_1.jpg`` or
  ``<plate>/<inspection>/A01_1.jpg`` where the inspection folder is a date (2026-11-20,
  20261120, 2026-11-20T0930) or a number (3, day3, inspection_3).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import PurePath

from ..errors import UsageError

MAX_ROWS = 32  # a 1536-well plate: A..AF
MAX_COLUMNS = 48


@dataclass(frozen=True)
class ImageName:
    """What a path says about the image. `understood` False: only plate (= folder) is known."""

    plate: str
    well: str | None = None
    drop: int | None = None
    inspection: str | None = None
    # From the name or folder where it holds a date or time; else the indexer uses the mtime.
    inspected_at: dt.datetime | None = None
    layout: str = "unknown"
    understood: bool = False
    note: str = ""


def well_name(row: str | int, column: int | str) -> str | None:
    """'A', 1 -> 'A01'; 3, 12 -> 'C12'; 'af', 48 -> 'AF48'. None when outside a 1536-well plate."""
    try:
        column = int(column)
    except (TypeError, ValueError):
        return None
    if isinstance(row, str) and not row.isdigit():
        letters = row.upper()
        if not re.fullmatch(r"[A-Z]{1,2}", letters):
            return None
        number = 0
        for letter in letters:
            number = number * 26 + (ord(letter) - ord("A") + 1)
    else:
        number = int(row)
    if not (1 <= number <= MAX_ROWS and 1 <= column <= MAX_COLUMNS):
        return None
    return f"{_row_letters(number)}{column:02d}"


def _row_letters(number: int) -> str:
    return chr(ord("A") + number - 1) if number <= 26 else "A" + chr(ord("A") + number - 27)


def _unknown(path: PurePath, note: str) -> ImageName:
    return ImageName(plate=path.parent.name or "(root)", note=note)


# ---------------------------------------------------------------------- built-in layouts
_ROCK_MAKER = re.compile(
    r"plateID_(?P<plate>\d+)/batchID_(?P<batch>\d+)/wellNum_(?P<well>\d+)/"
    r"profileID_(?P<profile>\d+)/d(?P<drop>\d+)_r(?P<region>\d+)_(?P<kind>[a-z]+)\.[A-Za-z]+$")


def read_rock_maker(path: PurePath, columns: int) -> ImageName | None:
    match = _ROCK_MAKER.search(path.as_posix())
    if not match:
        return None
    number = int(match["well"])
    rows = {12: 8, 24: 16, 48: 32}.get(columns, 0)
    base = ImageName(plate=match["plate"], drop=int(match["drop"]),
                     inspection=f"batch {match['batch']}", layout="rock_maker")
    if not rows or not 1 <= number <= rows * columns:
        return replace(base, note=f"wellNum {number} is not a well of a {rows * columns or '?'}"
                                  f"-well plate (set rock_maker_columns)")
    row, column = divmod(number - 1, columns)
    return replace(base, well=well_name(row + 1, column + 1), understood=True)


_XCHEM_FILE = re.compile(r"^(?P<plate>[A-Za-z0-9]+)_(?P<column>\d{2})(?P<row>[A-Pa-p])_"
                         r"(?P<drop>\d)\.(?:jpe?g|png|tiff?)$")
_FOLDER_DATE = re.compile(r"(?:^|_)(?P<date>\d{4}-\d{2}-\d{2})(?:_|$)")


def read_xchem(path: PurePath) -> ImageName | None:
    match = _XCHEM_FILE.match(path.name)
    if not match:
        return None
    well = well_name(match["row"], match["column"])
    if well is None:
        return None
    folder = path.parent.name
    when = None
    # The export folder starts with the plate's barcode; only then is its date this plate's.
    folder_date = _FOLDER_DATE.search(folder) if folder.startswith(match["plate"] + "_") \
        else None
    if folder_date:
        when = _parse_date(folder_date["date"])
    return ImageName(plate=match["plate"], well=well, drop=int(match["drop"]),
                     inspection=folder_date["date"] if folder_date else None, inspected_at=when,
                     layout="xchem", understood=True)


_MINSTREL = re.compile(
    r"^(?P<imager>RMM\d*)_(?P<unit>\d{2})_(?P<id>\d+)_(?P<experiment>.+)_(?P<barcode>[A-Za-z0-9]+)"
    r"_(?P<inspection>\d{3})_(?P<date>\d{6})_(?P<column>\d{2})_(?P<row>\d{2})_(?P<drop>\d{2})"
    r"_(?P<focus>[0-9A-Z]{2})_\d{2}_\d{3}_\d{3}_RDI\.(?:jpe?g|png|tiff?|bmp)$")


def read_minstrel(path: PurePath) -> ImageName | None:
    match = _MINSTREL.match(path.name)
    if not match:
        return None
    barcode = match["barcode"]
    # The barcode field is zero-padded (0000MC100341) where the plate folder is not (MC100341).
    short = barcode.lstrip("0") or barcode
    plate = short if short in (path.parent.name, path.parent.parent.name) else barcode
    base = ImageName(plate=plate, inspection=str(int(match["inspection"])),
                     inspected_at=_parse_date(match["date"], two_digit_year=True),
                     layout="minstrel")
    well = well_name(int(match["row"]), int(match["column"]))
    drop = int(match["drop"])
    if well is None or not 1 <= drop <= 9:
        return replace(base, note=f"column {match['column']}, row {match['row']}, drop "
                                  f"{match['drop']} is not a well and drop")
    return replace(base, well=well, drop=drop, understood=True)


_SYNTH_FILE = re.compile(r"^(?P<row>[A-Z]{1,2})(?P<column>\d{2})_(?P<drop>\d{1,2})"
                         r"\.(?:jpe?g|png|tiff?|bmp)$")
_DATE_FOLDER = re.compile(r"^(?P<date>\d{4}-?\d{2}-?\d{2})(?:[T_ ](?P<time>\d{2}[-:]?\d{2}"
                          r"(?:[-:]?\d{2})?))?$")
_NUMBER_FOLDER = re.compile(r"^(?:(?:day|d|inspection|insp|i)[_-]?)?(?P<number>\d{1,4})$",
                            re.IGNORECASE)


def read_synthetic(path: PurePath) -> ImageName | None:
    match = _SYNTH_FILE.match(path.name)
    if not match:
        return None
    well = well_name(match["row"], match["column"])
    if well is None:
        return None
    folder = path.parent.name
    plate, inspection, when = folder, None, None
    date_match = _DATE_FOLDER.match(folder)
    number_match = _NUMBER_FOLDER.match(folder)
    if date_match or number_match:
        plate = path.parent.parent.name
        inspection = folder
        if date_match:
            when = _parse_date(date_match["date"], date_match["time"])
    return ImageName(plate=plate or "(root)", well=well, drop=int(match["drop"]),
                     inspection=inspection, inspected_at=when, layout="synthetic", understood=True)


def _parse_date(date: str, time: str | None = None, *,
                two_digit_year: bool = False) -> dt.datetime | None:
    digits = date.replace("-", "")
    clock = (time or "").replace("-", "").replace(":", "")
    try:
        if two_digit_year:
            day = dt.datetime.strptime(digits, "%y%m%d")
        else:
            day = dt.datetime.strptime(digits, "%Y%m%d")
        if clock:
            parsed = dt.datetime.strptime(clock.ljust(6, "0"), "%H%M%S")
            day = day.replace(hour=parsed.hour, minute=parsed.minute, second=parsed.second)
    except ValueError:
        return None
    return day.replace(tzinfo=dt.timezone.utc)


BUILT_IN_LAYOUTS = ("rock_maker", "xchem", "minstrel", "synthetic")
PATTERN_GROUPS = {"plate", "well", "row", "column", "drop", "inspection", "date", "time"}


# ---------------------------------------------------------------------- the reader
class NameReader:
    """Reads paths with a site's own patterns first, then the built-in layouts.

    A site pattern is a Python regular expression searched in the path's POSIX form, with
    named groups among: plate, well (A1/A01) or row + column, drop, inspection, date
    (YYYY-MM-DD or YYYYMMDD), time (HHMM[SS]). Without a plate group the plate is the folder.
    """

    def __init__(self, patterns: Iterable[str] = (), rock_maker_columns: int = 12) -> None:
        self.patterns: list[re.Pattern[str]] = []
        for text in patterns:
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise UsageError(f"name pattern {text!r} is not a regular expression: "
                                 f"{exc}") from None
            unknown = set(pattern.groupindex) - PATTERN_GROUPS
            if unknown:
                raise UsageError(f"name pattern {text!r}: unknown group(s) "
                                 f"{', '.join(sorted(unknown))} (known: "
                                 f"{', '.join(sorted(PATTERN_GROUPS))})")
            if "well" not in pattern.groupindex and not {"row", "column"} <= set(
                    pattern.groupindex):
                raise UsageError(f"name pattern {text!r} needs a `well` group or `row` and "
                                 "`column` groups")
            self.patterns.append(pattern)
        if rock_maker_columns not in (12, 24, 48):
            raise UsageError(f"rock_maker_columns must be 12, 24 or 48 (got "
                             f"{rock_maker_columns})")
        self.layouts: list[tuple[str, Callable[[PurePath], ImageName | None]]] = [
            ("rock_maker", lambda p: read_rock_maker(p, rock_maker_columns)),
            ("xchem", read_xchem),
            ("minstrel", read_minstrel),
            ("synthetic", read_synthetic),
        ]

    def read(self, path: str | PurePath) -> ImageName:
        path = PurePath(path)
        for index, pattern in enumerate(self.patterns):
            found = self._read_pattern(pattern, index, path)
            if found is not None:
                return found
        for _, layout in self.layouts:
            found = layout(path)
            if found is not None:
                return found
        return _unknown(path, "name not understood: plate is the folder, well unknown")

    def _read_pattern(self, pattern: re.Pattern[str], index: int,
                      path: PurePath) -> ImageName | None:
        match = pattern.search(path.as_posix())
        if not match:
            return None
        groups = {k: v for k, v in match.groupdict().items() if v}
        layout = f"pattern {index + 1}"
        plate = groups.get("plate") or path.parent.name
        if "well" in groups:
            well_match = re.fullmatch(r"([A-Za-z]{1,2})(\d{1,2})", groups["well"])
            well = well_name(well_match[1], well_match[2]) if well_match else None
        else:
            well = well_name(groups.get("row", ""), groups.get("column", ""))
        drop = int(groups["drop"]) if groups.get("drop", "").isdigit() else None
        when = _parse_date(groups["date"], groups.get("time")) if "date" in groups else None
        base = ImageName(plate=plate, drop=drop, inspection=groups.get("inspection")
                         or groups.get("date"), inspected_at=when, layout=layout)
        if well is None:
            return replace(base, note=f"{layout} matched but its well is not a plate well")
        return replace(base, well=well, understood=True)
