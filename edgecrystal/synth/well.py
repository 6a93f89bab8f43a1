"""One well image: plate plastic, rim, tinted well floor, the drop with its meniscus and
contents, then the optics and the camera (vignetting, colour handling, blur, noise).

Everything is float32 RGB in 0..1 until the last step; per-pixel work is single-channel where
it can be, since full-image RGB temporaries are what the time goes on.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from . import contents
from .drop import SHAPES, Drop, dome, fill, meniscus, outline
from .fields import colour_field, offsets, smooth_noise, superellipse_radius
from .layers import Layers
from .styles import RANDOM_STYLE, STYLE_TABLE, STYLES, Style, uniform

# The drop mask must cover a plausible part of the image: smaller is a speck, larger is not a
# sitting drop seen whole.
MIN_FRACTION = 0.05
MAX_FRACTION = 0.60
F32 = np.float32


def render_well(rng: np.random.Generator, size: int, label: str,
                style: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """A square well image (size x size RGB uint8), its drop mask (bool) and metadata."""
    return render_scene(rng, size, size, label, style)


def render_scene(rng: np.random.Generator, width: int, height: int, label: str,
                 style: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """A well image of any size (plates are 1280x960), its drop mask and metadata."""
    rgb, mask, _, meta = render_scene_crystals(rng, width, height, label, style)
    return rgb, mask, meta


def render_scene_crystals(rng: np.random.Generator, width: int, height: int, label: str,
                          style: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                               dict[str, str]]:
    """render_scene plus the crystal mask (bool, the image's size; empty without crystals)."""
    if width < 32 or height < 32:
        raise UsageError(f"image size {width}x{height} is too small (at least 32 px)")
    if style not in STYLE_TABLE:
        raise UsageError(f"unknown style {style} (choose from {', '.join(STYLES)}; the style "
                         f"{RANDOM_STYLE} is synth.scene.render_any's)")
    st = STYLE_TABLE[style]
    # Separate streams for the scene, the class contents and the extras: the same seed drawn
    # as another class gives the same well, drop and camera, so only the contents differ.
    seeds = rng.integers(0, 2**63 - 1, size=3)
    rng, paint_rng, extra_rng = (np.random.default_rng(int(s)) for s in seeds)
    h, w = height, width
    short = float(min(h, w))
    scale = short / 512.0

    # Well geometry: centre jittered a little, as plates never sit exactly under the camera.
    cx = w / 2 + rng.normal(0, 0.02) * short
    cy = h / 2 + rng.normal(0, 0.02) * short
    rad = uniform(rng, st.well_radius) * short
    dx, dy = offsets(h, w, cx, cy)
    aspect = 1.0 if st.well_shape == 2.0 else rng.uniform(0.95, 1.05)
    r_norm = superellipse_radius(dx, dy, rad, rad * aspect, st.well_shape).astype(F32)

    img = _floor(rng, st, h, w, r_norm)
    drop = _drop(rng, st, h, w, cx, cy, rad, r_norm < 1.0)

    layers = Layers(h, w, scale)
    dark, glow = meniscus(rng, drop, uniform(rng, st.meniscus), scale)
    painted = contents.paint(paint_rng, layers, _inner(drop.mask, scale), drop.radius, label)
    n_bubbles = contents.bubbles(extra_rng, layers, _inner(drop.mask, 4 * scale), drop.radius)
    contents.clutter(extra_rng, layers, _inner(drop.mask, 2 * scale), drop.radius)
    layers.clip_to(drop.mask)
    contents.dust(extra_rng, layers, int(extra_rng.integers(0, 12)))

    # Transmission: drop body shading times (1 - absorption), then glow on top.
    trans = layers.absorb()
    trans += dark[..., None]
    np.clip(trans, 0.0, 0.97, out=trans)
    np.subtract(1.0, trans, out=trans)
    trans *= _drop_body(rng, st, drop, h, w, img)
    img *= trans
    img += (layers.glow + glow)[..., None]
    img = _rim(rng, st, img, r_norm, rad, scale)
    rgb = _camera(rng, st, img, dx, dy, short)

    meta = {
        "style": style,
        "habit": painted.get("habit", ""),
        "size": painted.get("size", ""),
        "drop_shape": drop.shape,
        "drop_fraction": f"{drop.mask.mean():.3f}",
        "bubbles": str(n_bubbles),
    }
    return rgb, drop.mask, layers.crystals, meta


def _inner(mask: np.ndarray, margin: float) -> np.ndarray:
    """The drop shrunk by `margin` pixels: where contents may be placed."""
    import cv2

    k = max(1, round(margin))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    inner = cv2.erode(mask.astype(np.uint8), kernel) > 0
    return inner if inner.any() else mask


def _floor(rng: np.random.Generator, st: Style, h: int, w: int,
           r_norm: np.ndarray) -> np.ndarray:
    """The lit well floor: base colour, drifting tint (stronger towards the wall, as in MARCO's
    polarised light), rainbow bands near the wall, an illumination gradient, faint texture."""
    palette = np.array(st.palette, F32)
    img = colour_field(rng, h, w, int(rng.integers(2, 5)), palette)
    base = np.array(st.floor, F32)
    edge = np.clip(r_norm, 0, 1.2) ** 2
    amount = F32(st.tint) * (0.5 + 0.5 * edge)
    img -= base
    img *= amount[..., None]
    img += base
    if rng.random() < st.rainbow:
        img = _rainbow(rng, img, r_norm)
    ang = rng.uniform(0, 2 * np.pi)
    gx = (np.arange(w, dtype=F32) / w - 0.5)[None, :] * F32(np.cos(ang))
    gy = (np.arange(h, dtype=F32) / h - 0.5)[:, None] * F32(np.sin(ang))
    light = 1.0 + (gx + gy) * F32(rng.uniform(0.0, 0.25))
    light *= 0.97 + 0.06 * smooth_noise(rng, h, w, 12)
    img *= light[..., None]
    return img


def _rainbow(rng: np.random.Generator, img: np.ndarray, r_norm: np.ndarray) -> np.ndarray:
    """Interference colours in a band along part of the wall (stress in the plastic seen
    between polarisers)."""
    h, w = r_norm.shape
    band = np.clip((r_norm - rng.uniform(0.55, 0.8)) * 3.5, 0.0, 1.0)
    band *= smooth_noise(rng, h, w, 3) ** 1.5
    phase = r_norm * F32(rng.uniform(6, 14)) + F32(rng.uniform(0, 2 * np.pi))
    hues = [np.cos(phase + F32(k * 2.1)) for k in range(3)]
    colour = 0.8 + 0.2 * np.stack(hues, axis=2)
    strength = F32(rng.uniform(0.4, 0.9))
    return img * (1.0 + (colour - 1.0) * (band * strength)[..., None])


def _drop(rng: np.random.Generator, st: Style, h: int, w: int, cx: float, cy: float,
          rad: float, floor_mask: np.ndarray) -> Drop:
    """Place a drop in the well; retry until its visible part covers a plausible fraction."""
    total = float(h * w)
    for attempt in range(20):
        shape = str(rng.choice(SHAPES, p=[0.25, 0.35, 0.25, 0.15]))
        r = uniform(rng, st.drop_radius) * rad
        off = uniform(rng, st.drop_offset) * rad
        a = rng.uniform(0, 2 * np.pi)
        dcx, dcy = cx + off * np.cos(a), cy + off * np.sin(a)
        mask = fill(h, w, outline(rng, dcx, dcy, r, shape)) & floor_mask
        frac = mask.sum() / total
        if MIN_FRACTION <= frac <= MAX_FRACTION or attempt == 19:
            break
    if not mask.any():  # cannot happen with sane styles; keep the contract anyway
        mask = floor_mask
    return Drop(mask, float(dcx), float(dcy), float(r), shape)


def _drop_body(rng: np.random.Generator, st: Style, drop: Drop, h: int, w: int,
               floor: np.ndarray) -> np.ndarray:
    """Per-pixel RGB factor for the drop body: brightness, dome shading, an own tint, radial
    streaks and mottle. 1 outside the drop."""
    body = dome(drop, st.dome) * F32(uniform(rng, st.drop_shade))
    if st.streaks > 0:
        dx, dy = offsets(h, w, drop.cx, drop.cy)
        ang = np.arctan2(dy, dx)
        # Smoothed angular noise: soft rays, not hairlines.
        ray = np.convolve(rng.standard_normal(736), np.ones(9) / 3.0, "valid")[:720].astype(F32)
        idx = ((ang + np.pi) * (719 / (2 * np.pi))).astype(np.int32)
        # Rays fade towards the centre, where they would otherwise pile into a starburst.
        fade = np.minimum(np.sqrt(dx * dx + dy * dy) * F32(2.5 / drop.radius), F32(1.0))
        body += F32(st.streaks * rng.uniform(0.2, 1.0)) * ray[idx] * fade
    if st.mottle > 0:
        body *= 1.0 + F32(st.mottle * 2) * (smooth_noise(rng, h, w, int(rng.integers(30, 60)))
                                             - 0.5)
    factor = np.where(drop.mask, body, F32(1.0))[..., None]
    if rng.random() < st.drop_tint:
        # A drop of another colour than the floor (MARCO: green drops on a pink floor).
        palette = np.array(st.palette, F32)
        target = palette[rng.integers(0, len(palette))]
        mean = floor[drop.mask].mean(axis=0) if drop.mask.any() else target
        tint = (target / np.maximum(mean, 1e-3)) ** F32(rng.uniform(0.5, 1.0))
        factor = np.where(drop.mask[..., None], factor * tint.astype(F32), factor)
    return factor


def _rim(rng: np.random.Generator, st: Style, img: np.ndarray, r_norm: np.ndarray,
         rad: float, scale: float) -> np.ndarray:
    """The well wall and the plastic beyond it, painted over the floor (this is what clips a
    drop that touches the wall)."""
    import cv2

    h, w = r_norm.shape
    outer = uniform(rng, st.rim_outer)
    soft = max(st.rim_soft * rad, 0.8 * scale)
    # 0 on the floor, 1 on the rim, smooth over `soft` pixels at the floor's edge.
    t_in = np.clip((r_norm - 1.0) * F32(rad / soft), 0.0, 1.0)
    t_out = np.clip((r_norm - outer) * F32(rad / (3.0 * scale)), 0.0, 1.0)
    rim = F32(uniform(rng, st.rim_value)) * (
        1.0 + F32(st.rim_grain * 6) * (smooth_noise(rng, h, w, int(rng.integers(40, 90))) - 0.5))
    palette = np.array(st.palette, F32) * np.array(st.plastic, F32) / np.array(st.floor, F32)
    palette = 0.5 * palette + 0.5 * palette.mean(axis=1, keepdims=True)  # plastic: less tint
    plastic = colour_field(rng, h, w, 4, palette)
    plastic *= (0.85 + 0.3 * smooth_noise(rng, h, w, 6) - _plate_marks(rng, h, w, rad, scale))[
        ..., None]
    wall = cv2.blendLinear(np.repeat(rim[..., None], 3, axis=2), plastic, 1.0 - t_out, t_out)
    out = cv2.blendLinear(img, wall, 1.0 - t_in, t_in)
    # A thin bright line where light glances off the floor's edge.
    ring = np.exp(-(((r_norm - 1.0) * F32(rad / (2.0 * scale))) ** 2)) * F32(0.12)
    out += ring[..., None]
    return out


def _plate_marks(rng: np.random.Generator, h: int, w: int, rad: float,
                 scale: float) -> np.ndarray:
    """Darkening from the plate's moulding beyond the wall: the straight edges of the well's
    square outer wall and a few hooks and arcs (MARCO's frames show such shapes at the sides)."""
    import cv2

    from .layers import line, polyline

    img = np.zeros((h, w), np.uint8)
    cx = w / 2
    for side in (-1, 1):
        x = cx + side * rad * rng.uniform(1.35, 1.6)
        line(img, (x, 0), (x + rng.normal(0, 3), h), int(rng.integers(60, 160)),
             max(1, int(2 * scale)))
    for _ in range(int(rng.integers(0, 4))):
        side = rng.choice([-1, 1])
        c = np.array([cx + side * rad * rng.uniform(1.3, 1.7), rng.uniform(0, h)])
        a = np.linspace(rng.uniform(0, 2 * np.pi), 0, 20) + rng.uniform(1.5, 4.0)
        r = rad * rng.uniform(0.05, 0.15)
        arc = c + r * np.stack([np.cos(a), np.sin(a)], axis=1)
        polyline(img, arc, int(rng.integers(120, 230)), max(2, int(6 * scale)), closed=False)
    return cv2.GaussianBlur(img, (0, 0), 1.5 * scale).astype(F32) * F32(0.7 / 255)


def _camera(rng: np.random.Generator, st: Style, img: np.ndarray, dx: np.ndarray,
            dy: np.ndarray, short: float) -> np.ndarray:
    import cv2

    v = F32(uniform(rng, st.vignette))
    rr = (dx * dx + dy * dy) * F32(1.0 / (0.75 * short) ** 2)
    img *= (1.0 - v * np.minimum(rr, 1.5))[..., None]
    if st.colour != "rgb":
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if st.colour == "sepia":
            img = grey[..., None] * np.array([1.08, 0.95, 0.74], F32)
        else:
            img = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), uniform(rng, st.blur) * short / 512), F32)
    # Luminance noise, as a camera's output after demosaic and denoise has it.
    noise = rng.standard_normal(img.shape[:2], dtype=F32)
    noise *= F32(uniform(rng, st.noise))
    img += noise[..., None]
    img *= 255.0
    img += 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)
