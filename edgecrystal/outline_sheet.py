"""A contact sheet of finder outlines against drawn ones: one tile per image, the hand-drawn
drop outline in green, the finder's in magenta, the Dice in the corner, worst images first, so
anyone can see where the finder fails; and the same sheet with boxes (crystal_eval: drawn
crystal boxes against the crystal model's). OpenCV only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

TILE = 320
COLUMNS = 5
DRAWN = (0, 220, 0)  # RGB
FOUND = (255, 0, 255)


def outline_tile(rgb: np.ndarray, drawn: np.ndarray | None, found: np.ndarray,
                 caption: str) -> np.ndarray:
    """One TILE x TILE tile: the image fitted in, both outlines, a caption bar."""
    import cv2

    h, w = rgb.shape[:2]
    scale = TILE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    for mask, colour in ((drawn, DRAWN), (found, FOUND)):
        if mask is None:
            continue
        m = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(small, contours, -1, colour, 2, cv2.LINE_AA)
    tile = np.zeros((TILE, TILE, 3), np.uint8)
    tile[: size[1], : size[0]] = small
    cv2.rectangle(tile, (0, 0), (TILE, 16), (0, 0, 0), -1)
    cv2.putText(tile, caption[:48], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255),
                1, cv2.LINE_AA)
    return tile


def write_sheet(path: Path, images: Sequence[np.ndarray], drawn: Sequence[np.ndarray | None],
                found: Sequence[np.ndarray], captions: Sequence[str],
                order: Sequence[int] | None = None) -> Path:
    """All tiles in a grid (COLUMNS wide) written as a PNG; `order` picks the tile order."""
    indices = list(order) if order is not None else list(range(len(images)))
    return write_tiles(path, [outline_tile(images[i], drawn[i], found[i], captions[i])
                              for i in indices])


def boxes_tile(rgb: np.ndarray, boxes: Sequence[tuple[Sequence[tuple[int, int, int, int]],
                                                      tuple[int, int, int]]],
               scale: float, caption: str) -> np.ndarray:
    """One tile: the image fitted in, each group of boxes (original pixels, x1/y1 exclusive;
    `scale` maps them onto `rgb`) in its RGB colour, a caption bar."""
    import cv2

    h, w = rgb.shape[:2]
    fit = TILE / max(h, w)
    size = (max(1, round(w * fit)), max(1, round(h * fit)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    for group, colour in boxes:
        for x0, y0, x1, y1 in group:
            k = scale * fit
            cv2.rectangle(small, (round(x0 * k), round(y0 * k)),
                          (max(round(x0 * k), round(x1 * k) - 1),
                           max(round(y0 * k), round(y1 * k) - 1)), colour, 1)
    return outline_tile(small, None, np.zeros(small.shape[:2], np.uint8), caption)


def write_tiles(path: Path, tiles: list[np.ndarray]) -> Path:
    """TILE x TILE tiles in a grid COLUMNS wide, written as a PNG."""
    from .imageio import write_image

    tiles = list(tiles)
    while len(tiles) % COLUMNS or not tiles:
        tiles.append(np.zeros((TILE, TILE, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    write_image(path, np.vstack(rows))
    return path
