"""Domain-randomised wells: the style `random`, for training a finder that works on imagers it
has never seen.

The four imager styles each copy one look. Here every image draws its own look and its own
scene from wide ranges instead: round, square or octagonal (cut-corner) subwells; wide and thin,
black and grey rims; wells off-centre, partly out of frame, or so close that the drop fills the
frame; the plate's moulding and neighbouring wells at the edges; 0 to 3 drops, tiny ones, ones
spread along the wall, ones filling the well, ones whose only edge is a faint meniscus line;
greyscale, sepia and any tint; vignetting, uneven light, defocus, sensor noise, JPEG; bubbles,
fibres, dust, skins and scratches. Variety, not prettiness, is the goal (domain randomisation):
the real imagers are somewhere inside these ranges.

The class contents are painted by the same painters as in every style (contents.paint), so the
classes stay as distinguishable as they are elsewhere; the artefacts added here are class-free.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import contents
from .drop import Drop, fill, meniscus, outline
from .fields import offsets, smooth_noise, superellipse_radius
from .layers import GREY, Layers, line, polyline
from .styles import STYLE_TABLE, Style, uniform
from .well import _camera, _drop_body, _floor, _inner, _rim

F32 = np.float32
WELL_KINDS = ("round", "square", "octagon")
FRAMINGS = ("centred", "off-centre", "close-up")
# A drop smaller than this part of the image is not drawn (it would be a speck, not a drop).
MIN_DROP_FRACTION = 0.004


def random_style(rng: np.random.Generator) -> Style:
    """One imager look: in a third of the images one of the imager styles as it is, otherwise
    every field of Style drawn from wide ranges (each image its own)."""
    base = STYLE_TABLE[str(rng.choice(tuple(STYLE_TABLE)))]
    if rng.random() < 0.3:
        return base
    colour = str(rng.choice(["rgb", "grey", "sepia"], p=[0.55, 0.3, 0.15]))
    floor = _floor_colour(rng)
    palette = tuple(_rgb(np.clip(floor + rng.normal(0, 0.06, 3), 0.3, 1.0))
                    for _ in range(int(rng.integers(2, 5))))
    rim_dark = rng.random() < 0.6
    rim_value = (0.0, 0.12) if rim_dark else (0.1, 0.55)
    lo = float(rng.uniform(*rim_value))
    return dataclasses.replace(
        base,
        name="random",
        rim_outer=(1.0 + rng.uniform(0.02, 0.15), 1.0 + rng.uniform(0.15, 0.6)),
        rim_value=(lo, lo + 0.05),
        rim_grain=float(rng.uniform(0.0, 0.1)),
        rim_soft=float(rng.choice([rng.uniform(0.002, 0.01), rng.uniform(0.01, 0.08)])),
        floor=_rgb(floor),
        palette=palette,
        tint=float(rng.uniform(0.0, 0.9)),
        plastic=_rgb(np.clip(floor * rng.uniform(0.1, 1.0), 0.02, 1.0)),
        vignette=(0.0, float(rng.choice([0.1, 0.3, 0.7]))),
        drop_shade=(float(rng.uniform(0.6, 0.95)), 1.03),
        dome=float(rng.uniform(0.0, 0.35)),
        meniscus=(float(rng.uniform(0.05, 0.6)), float(rng.uniform(0.6, 0.97))),
        drop_tint=float(rng.uniform(0.0, 0.5)),
        streaks=float(rng.choice([0.0, 0.01])),
        mottle=float(rng.uniform(0.0, 0.08)),
        rainbow=float(rng.uniform(0.0, 0.5)),
        colour=colour,
        noise=(0.003, float(rng.uniform(0.01, 0.05))),
        blur=(0.3, float(rng.uniform(0.8, 3.0))),
    )


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


def _floor_colour(rng: np.random.Generator) -> np.ndarray:
    """Lit floor: neutral grey, warm cream, MARCO pink, a green or blue cast, any brightness."""
    kind = rng.choice(["neutral", "cream", "pink", "cast"])
    level = rng.uniform(0.55, 0.97)
    if kind == "neutral":
        tint = np.ones(3)
    elif kind == "cream":
        tint = np.array([1.0, 0.98, 0.88])
    elif kind == "pink":
        tint = np.array([1.0, 0.8, 0.95])
    else:
        tint = 1.0 - rng.uniform(0.0, 0.2, 3)
    return np.clip(level * tint / tint.max(), 0.2, 1.0).astype(F32)


def well_radius_field(kind: str, dx: np.ndarray, dy: np.ndarray, a: float, b: float,
                      cut: float) -> np.ndarray:
    """Normalised radius (< 1 inside) of a round, rounded-square or octagonal well.

    The octagon is a square with its corners cut: max(|x|, |y|, (|x| + |y|) / cut), where cut
    in (1, 2) sets how much of each corner is cut away (1.4 is near a regular octagon)."""
    if kind == "round":
        return superellipse_radius(dx, dy, a, b, 2.0)
    if kind == "square":
        return superellipse_radius(dx, dy, a, b, 10.0)
    x, y = np.abs(dx / F32(a)), np.abs(dy / F32(b))
    return np.maximum(np.maximum(x, y), (x + y) / F32(cut))


def render_random(rng: np.random.Generator, width: int, height: int, label: str,
                  empty_chance: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """One domain-randomised well image (height x width RGB uint8), its drop mask and metadata.

    With probability `empty_chance` the well holds no drop (mask all 0): a finder must be able
    to say "no drop"."""
    rgb, mask, _, meta = render_random_crystals(rng, width, height, label, empty_chance)
    return rgb, mask, meta


def render_random_crystals(rng: np.random.Generator, width: int, height: int, label: str,
                           empty_chance: float = 0.0) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray, dict[str, str]]:
    """render_random plus the crystal mask (bool, the image's size; empty without crystals)."""
    seeds = rng.integers(0, 2**63 - 1, size=4)
    rng, paint_rng, extra_rng, look_rng = (np.random.default_rng(int(s)) for s in seeds)
    st = random_style(look_rng)
    h, w = height, width
    short = float(min(h, w))
    scale = short / 512.0

    kind = str(rng.choice(WELL_KINDS, p=[0.5, 0.25, 0.25]))
    framing = str(rng.choice(FRAMINGS, p=[0.45, 0.35, 0.2]))
    cx, cy, rad = _framing(rng, framing, w, h, short)
    aspect = float(rng.uniform(0.9, 1.1))
    cut = float(rng.uniform(1.25, 1.7))
    dx, dy = offsets(h, w, cx, cy)
    r_main = well_radius_field(kind, dx, dy, rad, rad * aspect, cut).astype(F32)
    r_all = _with_neighbours(rng, kind, r_main, w, h, cx, cy, rad, aspect, cut, st)

    img = _floor(rng, st, h, w, r_all)
    floor_mask = r_main < 1.0
    drops = _drops(rng, w, h, cx, cy, rad, floor_mask, empty_chance)

    layers = Layers(h, w, scale)
    dark = np.zeros((h, w), F32)
    glow = np.zeros((h, w), F32)
    faint = rng.random() < 0.2  # meniscus-only edge: drop body the same tone as the floor
    habit, size_text = "", ""
    n_bubbles = 0
    mask = np.zeros((h, w), bool)
    for drop in drops:
        strength = uniform(rng, (0.05, 0.25) if faint else st.meniscus)
        # A drop that covers the whole frame has no edge: its distances overflow to inf (and
        # its meniscus terms to 0, which is right).
        with np.errstate(over="ignore"):
            d_dark, d_glow = meniscus(rng, drop, strength, scale)
        np.maximum(dark, d_dark, out=dark)
        glow += d_glow
        painted = contents.paint(paint_rng, layers, _inner(drop.mask, scale), drop.radius, label)
        habit, size_text = painted.get("habit", habit), painted.get("size", size_text)
        n_bubbles += contents.bubbles(extra_rng, layers, _inner(drop.mask, 4 * scale),
                                      drop.radius)
        contents.clutter(extra_rng, layers, _inner(drop.mask, 2 * scale), drop.radius)
        mask |= drop.mask
    if rng.random() < 0.1 and drops:
        _skin_edge(extra_rng, layers, drops[0])
    layers.clip_to(mask)
    contents.dust(extra_rng, layers, int(extra_rng.integers(0, 30)))
    n_fibres = _fibres(extra_rng, layers, rad)
    n_scratches = _scratches(extra_rng, layers)

    trans = layers.absorb()
    trans += dark[..., None]
    np.clip(trans, 0.0, 0.97, out=trans)
    np.subtract(1.0, trans, out=trans)
    for drop in drops:
        body = _drop_body(rng, _faint(st) if faint else st, drop, h, w, img)
        trans *= body
    img *= trans
    img += (layers.glow + glow)[..., None]
    img = _rim(rng, st, img, r_all, rad, scale)
    img *= _uneven_light(rng, h, w)[..., None]
    rgb = _camera(rng, st, img, dx, dy, short)
    rgb = _colour_cast(rng, rgb)
    rgb = _jpeg(rng, rgb)

    meta = {
        "style": "random",
        "habit": habit,
        "size": size_text,
        "drop_shape": f"{kind}/{framing}/{len(drops)} drops/{n_fibres} fibres/"
                      f"{n_scratches} scratches",
        "drop_fraction": f"{mask.mean():.3f}",
        "bubbles": str(n_bubbles),
    }
    return rgb, mask, layers.crystals, meta


def _framing(rng: np.random.Generator, framing: str, w: int, h: int,
             short: float) -> tuple[float, float, float]:
    """Well centre and radius: centred (small jitter), off-centre (partly out of frame) or a
    close-up (the well larger than the frame, its wall at most in a corner)."""
    if framing == "centred":
        rad = rng.uniform(0.33, 0.5) * short
        jitter = 0.04 * short
    elif framing == "off-centre":
        rad = rng.uniform(0.35, 0.6) * short
        jitter = 0.25 * short
    else:
        rad = rng.uniform(0.65, 1.4) * short
        jitter = 0.3 * short
    cx = w / 2 + rng.uniform(-1, 1) * jitter
    cy = h / 2 + rng.uniform(-1, 1) * jitter
    return float(cx), float(cy), float(rad)


def _with_neighbours(rng: np.random.Generator, kind: str, r_main: np.ndarray, w: int, h: int,
                     cx: float, cy: float, rad: float, aspect: float, cut: float,
                     st: Style) -> np.ndarray:
    """The main well's radius field, with the plate's neighbouring wells (same shape, one pitch
    away) where they reach into the frame: their floors show at the edges."""
    if rng.random() < 0.5:
        return r_main
    pitch = rad * st.rim_outer[1] * rng.uniform(1.05, 1.5) * 2.0
    out = r_main
    for ox, oy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)):
        nx, ny = cx + ox * pitch, cy + oy * pitch
        if nx + rad < 0 or nx - rad > w or ny + rad < 0 or ny - rad > h:
            continue
        ndx, ndy = offsets(h, w, nx, ny)
        out = np.minimum(out, well_radius_field(kind, ndx, ndy, rad, rad * aspect, cut))
    return out.astype(F32)


def _drops(rng: np.random.Generator, w: int, h: int, cx: float, cy: float, rad: float,
           floor_mask: np.ndarray, empty_chance: float) -> list[Drop]:
    """0 to 3 drops in the well, not overlapping: tiny, ordinary, spread along the wall or
    filling the well. Each drop's mask is clipped to the well floor (the wall hides the rest)."""
    if rng.random() < empty_chance:
        return []
    count = int(rng.choice([1, 2, 3], p=[0.75, 0.17, 0.08]))
    total = float(h * w)
    drops: list[Drop] = []
    taken = np.zeros((h, w), bool)
    for _ in range(count * 8):
        if len(drops) == count:
            break
        mode = str(rng.choice(["tiny", "ordinary", "wall", "filling"],
                              p=[0.12, 0.5, 0.23, 0.15]))
        if count > 1 and mode == "filling":
            mode = "ordinary"
        size = {"tiny": (0.08, 0.2), "ordinary": (0.25, 0.7), "wall": (0.35, 0.8),
                "filling": (0.85, 1.25)}[mode]
        r = rng.uniform(*size) * rad / (1.0 if count == 1 else np.sqrt(count))
        off = {"tiny": (0.0, 0.8), "ordinary": (0.0, 0.5), "wall": (0.6, 1.1),
               "filling": (0.0, 0.3)}[mode]
        distance = rng.uniform(*off) * rad
        a = rng.uniform(0, 2 * np.pi)
        dcx, dcy = cx + distance * np.cos(a), cy + distance * np.sin(a)
        shape = str(rng.choice(["ellipse", "blob", "teardrop", "lens"], p=[0.3, 0.35, 0.2, 0.15]))
        mask = fill(h, w, outline(rng, dcx, dcy, r, shape)) & floor_mask
        if mask.sum() < MIN_DROP_FRACTION * total or (mask & _grow(taken, r * 0.1)).any():
            continue
        drops.append(Drop(mask, float(dcx), float(dcy), float(r), shape))
        taken |= mask
    if not drops:  # the well shows too little floor for any drop: one drop on what there is
        drops.append(Drop(floor_mask.copy(), cx, cy, rad, "ellipse"))
    return drops


def _grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    import cv2

    if not mask.any():
        return mask
    k = max(1, round(pixels))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _faint(st: Style) -> Style:
    """The same look with a drop body of the floor's own tone: only the meniscus line shows."""
    return dataclasses.replace(st, drop_shade=(0.97, 1.02), dome=0.0, drop_tint=0.0,
                               streaks=0.0)


def _skin_edge(rng: np.random.Generator, layers: Layers, drop: Drop) -> None:
    """A faint wrinkled skin edge across part of a drop (a film on the surface, any class)."""
    img = layers.scratch()
    start = np.array([drop.cx, drop.cy]) + rng.normal(0, 0.3 * drop.radius, 2)
    steps = int(rng.integers(10, 30))
    turns = np.cumsum(rng.normal(0, 0.15, steps)) + rng.uniform(0, 2 * np.pi)
    path = start + np.cumsum(drop.radius * 0.05 * np.stack([np.cos(turns), np.sin(turns)], 1),
                             axis=0)
    polyline(img, path, 200, max(1, int(1.5 * layers.scale)), closed=False)
    layers.add(img, GREY, rng.uniform(0.1, 0.3), 0.8 * layers.scale)


def _fibres(rng: np.random.Generator, layers: Layers, rad: float) -> int:
    """Fibres on the seal: long thin wandering threads anywhere in the frame."""
    n = int(rng.choice([0, 0, 1, 2, 3]))
    if not n:
        return 0
    img = layers.scratch()
    for _ in range(n):
        start = rng.uniform([0, 0], [layers.w, layers.h])
        steps = int(rng.integers(10, 40))
        turns = np.cumsum(rng.normal(0, 0.2, steps)) + rng.uniform(0, 2 * np.pi)
        step = rad * rng.uniform(0.02, 0.05)
        path = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), axis=0)
        polyline(img, path, int(rng.integers(120, 256)), max(1, int(rng.uniform(1, 3)
                                                                     * layers.scale)),
                 closed=False)
    layers.add(img, GREY, rng.uniform(0.3, 0.8), 0.6 * layers.scale)
    return n


def _scratches(rng: np.random.Generator, layers: Layers) -> int:
    """Scratches in the seal or the plastic: long straight hairlines (dark or bright)."""
    n = int(rng.choice([0, 0, 0, 1, 2]))
    if not n:
        return 0
    dark, bright = layers.scratch(), layers.scratch()
    for _ in range(n):
        p0 = rng.uniform([0, 0], [layers.w, layers.h])
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.2, 1.0) * max(layers.w, layers.h)
        p1 = p0 + length * np.array([np.cos(angle), np.sin(angle)])
        line(dark if rng.random() < 0.6 else bright, p0, p1, int(rng.integers(80, 200)),
             max(1, int(layers.scale)))
    layers.add(dark, GREY, rng.uniform(0.2, 0.5), 0.5 * layers.scale)
    layers.add_glow(bright, rng.uniform(0.05, 0.15), 0.5 * layers.scale)
    return n


def _uneven_light(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Illumination that is not flat: a tilt across the frame and large soft blotches."""
    tilt = rng.uniform(0.0, 0.5)
    angle = rng.uniform(0, 2 * np.pi)
    gx = (np.arange(w, dtype=F32) / w - 0.5)[None, :] * F32(np.cos(angle))
    gy = (np.arange(h, dtype=F32) / h - 0.5)[:, None] * F32(np.sin(angle))
    light = 1.0 + (gx + gy) * F32(tilt)
    light += F32(rng.uniform(0.0, 0.3)) * (smooth_noise(rng, h, w, int(rng.integers(2, 5)))
                                           - F32(0.5))
    return np.clip(light, 0.3, 1.5).astype(F32)


def _colour_cast(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """White balance of another camera: per-channel gains (greyscale images stay grey)."""
    if rng.random() < 0.5 or (rgb[..., 0] == rgb[..., 1]).all():
        return rgb
    import cv2

    gains = rng.uniform(0.8, 1.15, 3)
    lut = np.stack([np.clip(np.arange(256) * g, 0, 255) for g in gains], axis=1)
    return cv2.LUT(rgb, lut.astype(np.uint8)[:, None, :])


def _jpeg(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """The imager's own JPEG, from good to blocky (the data set writes it once more)."""
    if rng.random() < 0.3:
        return rgb
    import cv2

    quality = int(rng.integers(25, 95))
    ok, enc = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED) if ok else None
    return rgb if decoded is None else decoded
