"""The crystal boxes and the target on the overlay picture, written by write_result as score
and serve write it (issue 25 item 2, the overlay)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.crystal_marks import BOX_COLOUR, TARGET_COLOUR, caption
from edgecrystal.pipeline import ModelInfo, Scored
from edgecrystal.results import overlay_path, write_result

MODEL = ModelInfo("/b", "fp123", ("clear", "crystals"), "onnxruntime", "fp32")
# The image is 400 x 300; the overlay preview is half that, so boxes are drawn at half size.
BIG = CrystalBox((100, 80, 180, 140), area_px=2000, score=0.9)
SMALL = CrystalBox((300, 200, 320, 230), area_px=200, score=0.95)


def _overlay(tmp_path: Path, crystals: list[CrystalBox] | None) -> np.ndarray:
    import cv2

    img = tmp_path / "A01_1.jpg"
    img.write_bytes(b"pretend image bytes")
    r = Scored(img, os.stat(img), width=400, height=300, sha256="ab" * 32, size_bytes=19)
    r.label, r.scores = "crystals", {"clear": 0.1, "crystals": 0.9}
    r.found, r.box, r.area_px = True, (20, 20, 380, 280), 90000
    r.preview = np.full((150, 200, 3), 90, np.uint8)
    r.crystals = crystals
    write_result(r, MODEL, overlay=True)
    picture = cv2.imread(str(overlay_path(img)))
    assert picture is not None and picture.shape[:2] == (150, 200)
    return picture


def _is(picture: np.ndarray, x: int, y: int, bgr: tuple[int, int, int]) -> bool:
    return tuple(int(v) for v in picture[y, x]) == bgr


def test_overlay_draws_each_crystal_box_and_a_cross_on_the_target(tmp_path: Path) -> None:
    picture = _overlay(tmp_path, [BIG, SMALL])
    # BIG's left edge at x = 50 (100 / 2), halfway down it; SMALL's top edge at y = 100.
    assert _is(picture, 50, 55, BOX_COLOUR) and _is(picture, 155, 100, BOX_COLOUR)
    # The target: BIG is the largest of the most certain ones (0.9 >= 0.8 x 0.95), centre
    # (140, 110) in the image, (70, 55) on the overlay.
    assert _is(picture, 70, 55, TARGET_COLOUR) and _is(picture, 74, 55, TARGET_COLOUR)
    assert not _is(picture, 160, 107, TARGET_COLOUR)  # not on the smaller crystal
    inside = picture[43:67, 53:87].reshape(-1, 3)  # within BIG (x 50-89, y 40-69 here)
    assert not any(tuple(int(v) for v in p) == BOX_COLOUR for p in inside)  # boxes are outlines


def test_overlay_without_a_crystal_model_or_crystal_draws_no_mark(tmp_path: Path) -> None:
    for crystals in (None, []):
        picture = _overlay(tmp_path, crystals)
        colours = {tuple(int(v) for v in p) for p in picture.reshape(-1, 3)}
        assert BOX_COLOUR not in colours and TARGET_COLOUR not in colours


def test_caption_counts_and_sizes_the_crystals() -> None:
    assert caption(None) == ""
    assert caption([]) == ", no crystal box"
    assert caption([SMALL]) == ", 1 crystal (largest 30 px)"
    assert caption([BIG, SMALL]) == ", 2 crystals (largest 80 px)"
