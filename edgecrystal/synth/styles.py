"""Imager styles: what a well looks like on each kind of imager the real samples come from.

Each style is data: well geometry, rim, floor tint, illumination and colour handling. The
drop and its contents are drawn the same way in every style, so a classifier cannot learn
the class from the style, only from what is inside the drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Style:
    name: str
    # Well floor: superellipse exponent (2 round, ~8 rounded square) and radius as a fraction of
    # the shorter image side; the rim runs from the floor edge out to rim_outer * radius.
    well_shape: float
    well_radius: tuple[float, float]
    rim_outer: tuple[float, float]
    rim_value: tuple[float, float]  # brightness of the rim (0 black)
    rim_grain: float  # granular texture of the rim (MARCO's foam-like black)
    rim_soft: float  # blur of the rim's inner edge, fraction of the radius
    floor: tuple[float, float, float]  # mean floor colour (RGB 0..1)
    palette: tuple[tuple[float, float, float], ...]  # tint colours the floor wanders through
    tint: float  # how far the floor wanders towards the palette (0 none)
    plastic: tuple[float, float, float]  # plate plastic outside the rim
    vignette: tuple[float, float]
    # Drop placement: radius as a fraction of the well radius, and centre offset likewise.
    drop_radius: tuple[float, float]
    drop_offset: tuple[float, float]
    drop_shade: tuple[float, float]  # drop brightness relative to the floor
    dome: float  # lens shading: drop darker towards its edge (Formulatrix's dome look)
    meniscus: tuple[float, float]  # darkness of the meniscus crescent
    drop_tint: float  # chance that the drop takes another tint than the floor around it
    streaks: float  # faint radial streaks in the drop (MARCO's sunburst look)
    mottle: float  # fine mottled texture in the drop (brightfield close-ups)
    rainbow: float  # chance of polarisation rainbow bands near the wall
    colour: str  # "rgb", "grey" or "sepia"
    noise: tuple[float, float]
    blur: tuple[float, float]


STYLE_TABLE: dict[str, Style] = {
    # MARCO GSK: round well filling the frame height, thick black rim, strong pink with green
    # and rainbow patches (polariser tint), drops off-centre and often against the wall.
    "marco": Style(
        name="marco", well_shape=2.0, well_radius=(0.40, 0.46), rim_outer=(1.2, 1.4),
        rim_value=(0.02, 0.10), rim_grain=0.10, rim_soft=0.006,
        floor=(0.95, 0.78, 0.92),
        palette=((0.97, 0.74, 0.93), (0.97, 0.74, 0.93), (0.76, 0.94, 0.80),
                 (0.93, 0.93, 0.96), (0.96, 0.84, 0.88)),
        tint=0.9, plastic=(0.86, 0.80, 0.88), vignette=(0.0, 0.15),
        drop_radius=(0.45, 0.85), drop_offset=(0.1, 0.6), drop_shade=(0.94, 1.02),
        dome=0.05, meniscus=(0.7, 0.97), drop_tint=0.5, streaks=0.012, mottle=0.0,
        rainbow=0.6, colour="rgb", noise=(0.008, 0.02), blur=(0.5, 1.1),
    ),
    # Formulatrix RI1000: round well with a broad soft dark surround, pale cream-grey to bluish
    # floor, a smaller roundish drop near the centre with dome shading.
    "formulatrix": Style(
        name="formulatrix", well_shape=2.0, well_radius=(0.40, 0.46), rim_outer=(1.12, 1.25),
        rim_value=(0.06, 0.18), rim_grain=0.02, rim_soft=0.05,
        floor=(0.90, 0.90, 0.82),
        palette=((0.92, 0.92, 0.82), (0.80, 0.86, 0.93), (0.90, 0.89, 0.84)),
        tint=0.5, plastic=(0.62, 0.64, 0.60), vignette=(0.15, 0.35),
        drop_radius=(0.30, 0.72), drop_offset=(0.0, 0.35), drop_shade=(0.82, 0.95),
        dome=0.25, meniscus=(0.3, 0.6), drop_tint=0.2, streaks=0.0, mottle=0.03,
        rainbow=0.0, colour="rgb", noise=(0.01, 0.025), blur=(0.6, 1.2),
    ),
    # Greyscale brightfield close-up: a rounded-square well that nearly fills the frame, black
    # frame, large drop pressed against a wall, mottled grey drop interior.
    "brightfield": Style(
        name="brightfield", well_shape=8.0, well_radius=(0.42, 0.47), rim_outer=(1.08, 1.2),
        rim_value=(0.02, 0.08), rim_grain=0.05, rim_soft=0.004,
        floor=(0.90, 0.90, 0.90), palette=((0.92, 0.92, 0.92), (0.84, 0.84, 0.84)),
        tint=0.5, plastic=(0.10, 0.10, 0.10), vignette=(0.0, 0.1),
        drop_radius=(0.55, 0.95), drop_offset=(0.25, 0.75), drop_shade=(0.55, 0.8),
        dome=0.3, meniscus=(0.5, 0.9), drop_tint=0.0, streaks=0.0, mottle=0.08,
        rainbow=0.0, colour="grey", noise=(0.01, 0.03), blur=(0.4, 0.9),
    ),
    # Minstrel-style: sepia, strong vignetting, mid-dark rim, drop anywhere in the well.
    "minstrel": Style(
        name="minstrel", well_shape=2.0, well_radius=(0.38, 0.46), rim_outer=(1.1, 1.25),
        rim_value=(0.10, 0.25), rim_grain=0.04, rim_soft=0.02,
        floor=(0.85, 0.85, 0.85), palette=((0.9, 0.9, 0.9), (0.75, 0.75, 0.75)),
        tint=0.4, plastic=(0.45, 0.45, 0.45), vignette=(0.35, 0.6),
        drop_radius=(0.35, 0.7), drop_offset=(0.0, 0.5), drop_shade=(0.85, 1.0),
        dome=0.15, meniscus=(0.35, 0.7), drop_tint=0.0, streaks=0.008, mottle=0.03,
        rainbow=0.0, colour="sepia", noise=(0.01, 0.025), blur=(0.7, 1.4),
    ),
}

STYLES: tuple[str, ...] = tuple(STYLE_TABLE)
# Not a look but a draw of every look and scene from wide ranges (synth/randomized.py): the
# finder's training data. Not among the default STYLES, which keep one imager each.
RANDOM_STYLE = "random"
ALL_STYLES: tuple[str, ...] = (*STYLES, RANDOM_STYLE)


def uniform(rng: np.random.Generator, span: tuple[float, float]) -> float:
    return float(rng.uniform(span[0], span[1]))
