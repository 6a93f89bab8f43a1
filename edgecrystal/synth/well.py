"""One well image: plate plastic, rim, tinted well floor, the drop with its meniscus and
contents, then the optics and the camera (vignetting, colour handling, blur, noise)."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from . import contents
from .drop import SHAPES, Drop, dome, fill, meniscus, outline
from .fields import colour_field, polar, smooth_noise, superellipse_radius
from .layers import Layers
from .styles import STYLE_TABLE, STYLES, Style, uniform

# The drop mask must cover a plausible part of the image: smaller is a speck, larger is not a
# sitting drop seen whole.
MIN_FRACTION = 0.05
MAX_FRACTION = 0.60


def render_well(rng: np.random.Generator, size: int, label: str,
                style: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """A square well image (size x size RGB uint8), its drop mask (bool) and metadata."""
    return render_scene(rng, size, size, label, style)


def render_scene(rng: np.random.Generator, width: int, height: int, label: str,
                 style: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    if style not in STYLE_TABLE:
        raise UsageError(f"unknown style {style} (choose from {', '.join(STYLES)})")
    if width < 32 or height < 32:
        raise UsageError(f"image size {width}x{height} is too small (at least 32 px)")
    st = STYLE_TABLE[style]
    h, w = height, width
    scale = min(h, w) / 512.0
    short = float(min(h, w))

    # Well geometry: centre jittered a little, as plates never sit exactly under the camera.
    cx = w / 2 + rng.normal(0, 0.02) * short
    cy = h / 2 + rng.normal(0, 0.02) * short
    rad = uniform(rng, st.well_radius) * short
    dx, dy, _ = polar(h, w, cx, cy)
    aspect = 1.0 if st.well_shape == 2.0 else rng.uniform(0.95, 1.05)
    r_norm = superellipse_radius(dx, dy, rad, rad * aspect, st.well_shape)
    floor_mask = r_norm < 1.0

    img = _floor(rng, st, h, w, r_norm)
    drop = _drop(rng, st, h, w, cx, cy, rad, floor_mask)

    layers = Layers(h, w, scale)
    dark, glow = meniscus(rng, drop, uniform(rng, st.meniscus), scale)
    meta = contents.paint(rng, layers, _inner(drop.mask, scale), drop.radius, label)
    n_bubbles = contents.bubbles(rng, layers, _inner(drop.mask, 4 * scale), drop.radius)
    layers.clip_to(drop.mask)
    contents.dust(rng, layers, int(rng.integers(0, 12)))

    shade = uniform(rng, st.drop_shade) * dome(drop, st.dome)
    img = np.where(drop.mask[..., None], img * shade[..., None], img)
    absorb = np.clip(layers.absorb + dark[..., None], 0.0, 0.97)
    img = img * (1.0 - absorb) + (layers.glow + glow)[..., None]
    img = _rim(rng, st, img, r_norm, rad, scale)
    img = _camera(rng, st, img, dx, dy, short)

    mask = drop.mask
    meta = {
        "style": style,
        "habit": meta.get("habit", ""),
        "size": meta.get("size", ""),
        "drop_shape": drop.shape,
        "drop_fraction": f"{mask.mean():.3f}",
        "bubbles": str(n_bubbles),
    }
    return img, mask, meta


def _inner(mask: np.ndarray, margin: float) -> np.ndarray:
    """The drop shrunk by `margin` pixels: where contents may be placed."""
    import cv2

    k = max(1, round(margin))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    inner = cv2.erode(mask.astype(np.uint8), kernel) > 0
    return inner if inner.any() else mask


def _floor(rng: np.random.Generator, st: Style, h: int, w: int,
           r_norm: np.ndarray) -> np.ndarray:
    """The lit well floor: base colour, drifting tint (stronger towards the wall in MARCO's
    polarised light), an illumination gradient and faint large-scale texture."""
    palette = np.array(st.palette, np.float32)
    tint = colour_field(rng, h, w, int(rng.integers(2, 5)), palette)
    edge = np.clip(r_norm, 0, 1.2)[..., None] ** 2
    amount = np.float32(st.tint) * (0.5 + 0.5 * edge)
    base = np.array(st.floor, np.float32)
    img = base + (tint - base) * amount
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(ang) * (xs / w - 0.5) + np.sin(ang) * (ys / h - 0.5)).astype(np.float32)
    img *= (1.0 + ramp * np.float32(rng.uniform(0.0, 0.25)))[..., None]
    img *= (0.97 + 0.06 * smooth_noise(rng, h, w, 12))[..., None]
    return img.astype(np.float32)


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


def _rim(rng: np.random.Generator, st: Style, img: np.ndarray, r_norm: np.ndarray,
         rad: float, scale: float) -> np.ndarray:
    """The well wall and the plastic beyond it, painted over the floor (this is what clips a
    drop that touches the wall)."""
    h, w = r_norm.shape
    outer = uniform(rng, st.rim_outer)
    soft = max(st.rim_soft * rad, 0.8 * scale)
    # 0 on the floor, 1 on the rim, smooth over `soft` pixels at the floor's edge.
    t_in = np.clip((r_norm - 1.0) * rad / soft, 0.0, 1.0)
    t_out = np.clip((r_norm - outer) * rad / (3.0 * scale) , 0.0, 1.0)
    rim_v = uniform(rng, st.rim_value)
    grain = smooth_noise(rng, h, w, int(rng.integers(40, 90)))
    rim_col = rim_v * (1.0 + st.rim_grain * 6 * (grain - 0.5))
    texture = 0.85 + 0.3 * smooth_noise(rng, h, w, 6)
    plastic = np.array(st.plastic, np.float32) * texture[..., None]
    # A thin bright line where light glances off the floor edge, then the dark wall.
    ring = np.exp(-(((r_norm - 1.0) * rad / (2.0 * scale)) ** 2))[..., None] * 0.12
    wall = rim_col[..., None] * (1 - t_out[..., None]) + plastic * t_out[..., None]
    out = img * (1 - t_in[..., None]) + wall * t_in[..., None] + ring
    return out.astype(np.float32)


def _camera(rng: np.random.Generator, st: Style, img: np.ndarray, dx: np.ndarray,
            dy: np.ndarray, short: float) -> np.ndarray:
    import cv2

    v = uniform(rng, st.vignette)
    rr = (dx * dx + dy * dy) / np.float32((0.75 * short) ** 2)
    img = img * (1.0 - v * np.clip(rr, 0, 1.5))[..., None]
    if st.colour != "rgb":
        grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
        if st.colour == "sepia":
            img = grey[..., None] * np.array([1.08, 0.95, 0.74], np.float32)
        else:
            img = np.repeat(grey[..., None], 3, axis=2)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), uniform(rng, st.blur) * short / 512)
    sigma = uniform(rng, st.noise)
    noise = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(sigma)
    img = img + noise[..., None]  # luminance noise, as after a camera's demosaic and denoise
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
