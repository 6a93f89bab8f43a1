"""The crystal boxes and the target drawn on the overlay picture (results.draw_overlay).

Boxes are in original pixels (crystal_boxes.CrystalBox) and the overlay is a downscaled copy, so
every coordinate is scaled by the overlay's `scale`. The target is a cross in a colour of its
own: it is where a harvest loop or a beam is aimed, and must not be lost among the boxes.
"""

from __future__ import annotations

from typing import Any

from .crystal_boxes import CrystalBox, largest_side, target

# BGR (OpenCV draws on BGR copies): magenta boxes, a red target, unlike any label colour.
BOX_COLOUR = (255, 0, 255)
TARGET_COLOUR = (0, 0, 255)


def draw_crystals(img: Any, crystals: list[CrystalBox], scale: float, thick: int) -> None:
    """Each crystal's box, and a cross on the target, onto `img` (BGR, drawn in place)."""
    import cv2

    for crystal in crystals:
        x0, y0, x1, y1 = (round(v * scale) for v in crystal.box)
        cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), BOX_COLOUR, thick)
    aim = target(crystals)
    if aim is not None:
        size = max(13, 8 * thick)
        centre = (round(aim[0] * scale), round(aim[1] * scale))
        # A dark rim under the red cross keeps it visible on a light drop or a bright crystal.
        cv2.drawMarker(img, centre, (0, 0, 0), cv2.MARKER_CROSS, size + 2, thick + 2)
        cv2.drawMarker(img, centre, TARGET_COLOUR, cv2.MARKER_CROSS, size, thick)


def caption(crystals: list[CrystalBox] | None) -> str:
    """What the overlay's label adds: the count and the largest crystal's longest side ("" for
    a bundle without a crystal model)."""
    if crystals is None:
        return ""
    if not crystals:
        return ", no crystal box"
    count = len(crystals)
    return (f", {count} crystal{'s' if count != 1 else ''} "
            f"(largest {largest_side(crystals)} px)")
