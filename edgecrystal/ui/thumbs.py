"""Drop thumbnails for the plate view and the queue: the drop's box (with a margin) cut from
the coarsest decode that still spans the thumbnail, as a small JPEG. Made on demand through the
one decoder and kept in a bounded in-memory cache keyed on the file's identity."""

from __future__ import annotations

import os
import threading
from typing import BinaryIO

from .. import preprocess
from ..imageio import Picture, encode_image

THUMB_SIDE = 128  # px, the long side
MARGIN = 0.1  # of the box's size on every side: the drop's edge stays in view
CACHED = 4096  # thumbnails (a few KB each)


def drop_thumbnail(opened: BinaryIO, name: str, box: list[int] | None,
                   side: int = THUMB_SIDE) -> bytes:
    """JPEG bytes of the drop (the whole image when there is no box) from an opened image file,
    which is closed here. ImageError when the file cannot be decoded."""
    with opened:
        st = os.fstat(opened.fileno())
        key = (name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
               tuple(box) if box else None, side)
        with _LOCK:
            cached = _CACHE.get(key)
        if cached is None:
            cached = _thumbnail(Picture(opened.read(), name), box, side)
            with _LOCK:  # the page's handlers run on a thread pool
                if len(_CACHE) >= CACHED:
                    _CACHE.pop(next(iter(_CACHE)))  # the oldest entry
                _CACHE[key] = cached
    return cached


# file identity (a rewritten file makes a new thumbnail), box and side -> JPEG bytes
_CACHE: dict[tuple[object, ...], bytes] = {}
_LOCK = threading.Lock()


def _thumbnail(picture: Picture, box: list[int] | None, side: int) -> bytes:
    import cv2

    x0, y0, x1, y1 = box if box else (0, 0, picture.width, picture.height)
    pad_x, pad_y = round((x1 - x0) * MARGIN), round((y1 - y0) * MARGIN)
    x0, y0 = max(0, x0 - pad_x), max(0, y0 - pad_y)
    x1, y1 = min(picture.width, x1 + pad_x), min(picture.height, y1 + pad_y)
    scale = side / max(1, x1 - x0, y1 - y0)
    reduction = preprocess.coarsest(picture, picture.width * min(1.0, scale),
                                    picture.height * min(1.0, scale))
    rgb = picture.pixels(reduction)
    fx, fy = rgb.shape[1] / picture.width, rgb.shape[0] / picture.height
    cut = rgb[int(y0 * fy): max(int(y0 * fy) + 1, round(y1 * fy)),
              int(x0 * fx): max(int(x0 * fx) + 1, round(x1 * fx))]
    h, w = cut.shape[:2]
    factor = min(1.0, side / max(h, w))
    if factor < 1.0:
        cut = cv2.resize(cut, (max(1, round(w * factor)), max(1, round(h * factor))),
                         interpolation=cv2.INTER_AREA)
    return encode_image(cut, ".jpg", quality=80, name=picture.name)
