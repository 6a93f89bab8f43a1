"""One image of any style: the imager styles (well.render_scene) or the domain-randomised
style `random` (randomized.render_random). The one entry point for the data set, the plate
writer and the contact sheet."""

from __future__ import annotations

import numpy as np

from .randomized import render_random_crystals
from .styles import RANDOM_STYLE
from .well import render_scene_crystals


def render_any(rng: np.random.Generator, width: int, height: int, label: str, style: str,
               empty_chance: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(RGB uint8 image, bool drop mask, metadata) of a well in `style`; `empty_chance` (style
    random only) is the probability that the well holds no drop."""
    rgb, mask, _, meta = render_any_crystals(rng, width, height, label, style, empty_chance)
    return rgb, mask, meta


def render_any_crystals(rng: np.random.Generator, width: int, height: int, label: str,
                        style: str, empty_chance: float = 0.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """render_any plus the crystal mask: bool, the image's size, True on every pixel a
    crystal's silhouette covers (inside the drop; empty for every class but crystals)."""
    if style == RANDOM_STYLE:
        return render_random_crystals(rng, width, height, label, empty_chance=empty_chance)
    return render_scene_crystals(rng, width, height, label, style)
