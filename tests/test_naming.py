"""Plate, well, drop and inspection from imager file names: the built-in layouts, a site's own
pattern, and names nobody understands (indexed by folder, well left empty, never guessed)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path, PurePath

import pytest
from index_helpers import write_image, write_result_for

from edgecrystal.errors import UsageError
from edgecrystal.naming import NameReader
from edgecrystal.results import Summaries, well_of

# Minstrel names in the style of public ones: the issue's (elided middle filled in) and one
# from CSIRO C3's published image folders (<barcode>/<inspection>/).
MINSTREL = ("/imager/MC100341/4/RMM3_01_328_ROBO_Test1_Clon1_MC_0000MC100341_004_100716_"
            "06_01_01_00_99_030_001_RDI.jpg")
MINSTREL_ISSUE = "RMM3_01_470_Screen_B_0000AB1234_003_081218_03_01_02_E0_99_030_001_RDI.jpg"
# Issue 23's Minstrel name: after the date comes the column (01-12), then the row (01-08).
MINSTREL_H12 = "RMM3_01_512_Screen_C_0000CI022987_002_121121_12_08_04_HF_99_030_001_RDI.jpg"
ROCK_MAKER = ("/mnt/RockMakerStorage/WellImages/539/plateID_14539/batchID_72673/wellNum_13/"
              "profileID_1/d2_r91234_ef.jpg")


def read(path: str, **options: object) -> object:
    return NameReader(**options).read(PurePath(path))  # type: ignore[arg-type]


def test_minstrel_names() -> None:
    name = read(MINSTREL)
    assert (name.plate, name.well, name.drop, name.inspection) == ("MC100341", "A06", 1, "4")
    assert name.inspected_at == dt.datetime(2010, 7, 16, tzinfo=dt.timezone.utc)
    assert name.layout == "minstrel" and name.understood
    issue = read(f"/x/{MINSTREL_ISSUE}")
    # The summary CSV used to read the `E0` token as well E00.
    assert (issue.well, issue.drop, issue.inspection) == ("A03", 2, "3")
    # Read as row 12, column 08 this was L08: a well no 96-well plate has.
    h12 = read(f"/imager/CI022987/2/{MINSTREL_H12}")
    assert (h12.plate, h12.well, h12.drop, h12.inspection) == ("CI022987", "H12", 4, "2")


def test_rock_maker_store() -> None:
    name = read(ROCK_MAKER)
    assert (name.plate, name.well, name.drop, name.inspection) == ("14539", "B01", 2,
                                                                   "batch 72673")
    assert read(ROCK_MAKER, rock_maker_columns=24).well == "A13"
    past = read(ROCK_MAKER.replace("wellNum_13", "wellNum_97"))
    assert past.well is None and not past.understood and "rock_maker_columns" in past.note


def test_xchem_export_and_synthetic_plates() -> None:
    xchem = read("/d/9b5j_2023-03-23_RI1000-0276-3drop/9b5j_12H_3.jpg")
    assert (xchem.plate, xchem.well, xchem.drop, xchem.inspection) == ("9b5j", "H12", 3,
                                                                       "2023-03-23")
    plate = read("/d/plate7/A01_1.jpg")
    assert (plate.plate, plate.well, plate.drop, plate.inspection) == ("plate7", "A01", 1, None)
    dated = read("/d/plate7/2026-11-20T0930/H12_1.jpg")
    assert (dated.plate, dated.inspection) == ("plate7", "2026-11-20T0930")
    assert dated.inspected_at == dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.timezone.utc)
    assert read("/d/plate7/day3/C04_2.jpg").inspection == "day3"


@pytest.mark.parametrize("path", ["/d/run1/plate3-h7.png", "/d/run1/x_AF48_2.tif",
                                  "/d/run1/IMG_0042.jpg", "/d/run1/E0.jpg"])
def test_a_name_like_a_well_is_not_guessed(path: str) -> None:
    name = read(path)
    assert name.well is None and not name.understood
    assert name.plate == "run1" and "not understood" in name.note


def test_real_sample_names(real_samples: Path) -> None:
    """Of the real photos' names only Diamond's export name says where the drop is."""
    with open(real_samples / "labels.csv", newline="") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    wells = {path: read(str(real_samples / path)).well for path in paths}
    assert wells.pop("xchem-chimp/97wo_01A_1.jpg") == "A01"
    assert set(wells.values()) == {None}


def test_site_pattern_comes_first() -> None:
    pattern = (r"/(?P<plate>[^/]+)/insp(?P<inspection>\d+)/(?P<row>[A-H])(?P<column>\d+)"
               r"-(?P<drop>\d)\.jpg$")
    name = read("/imager/P042/insp2/C7-3.jpg", patterns=[pattern])
    assert (name.plate, name.well, name.drop, name.inspection, name.layout) == (
        "P042", "C07", 3, "2", "pattern 1")
    # A pattern that matches but names no real well says so instead of guessing.
    odd = read("/imager/P042/insp2/Z99-3.jpg",
               patterns=[r"/(?P<row>[A-Z])(?P<column>\d+)-(?P<drop>\d)\.jpg$"])
    assert odd.well is None and not odd.understood


@pytest.mark.parametrize(("pattern", "message"), [
    (r"(?P<plate>[", "not a regular expression"),
    (r"(?P<plate>\w+)_(?P<wel>\w+)", "unknown group"),
    (r"(?P<plate>\w+)", "needs a `well` group"),
])
def test_bad_site_patterns_are_refused_in_one_line(pattern: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        NameReader([pattern])
    assert "\n" not in str(caught.value)


def test_summary_well_column(tmp_path: Path) -> None:
    image = write_image(tmp_path / MINSTREL_ISSUE)
    write_result_for(image, "clear")
    unknown = write_image(tmp_path / "plate3-h7.jpg")
    write_result_for(unknown, "clear")
    assert well_of(MINSTREL_ISSUE) == "A03"
    summary = Summaries(["clear", "crystals", "precipitate", "other"]).update(tmp_path)
    with open(summary, newline="") as handle:
        rows = {r["image"]: r["well"] for r in csv.DictReader(handle)}
    assert rows == {MINSTREL_ISSUE: "A03", "plate3-h7.jpg": ""}
