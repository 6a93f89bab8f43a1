#!/usr/bin/env python
"""Contact sheet of the synthetic generator: every style x every class, labelled, with the drop
mask outlined on some tiles; the domain-randomised style `random` gets several rows. Writes
docs/contact-sheet.png by default.

    .venv/bin/python scripts/contact_sheet.py [--out docs/contact-sheet.png] [--per-class 2]
    .venv/bin/python scripts/contact_sheet.py --real ../shared/real-samples --out /tmp/cmp.png

--real adds a row of real photos for side-by-side comparison; never commit that picture (the
real samples stay outside the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgecrystal import DEFAULT_CLASSES
from edgecrystal.imageio import read_image
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.scene import render_any
from edgecrystal.synth.styles import ALL_STYLES, RANDOM_STYLE


def label(tile: np.ndarray, text: str) -> None:
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)


def synth_tile(seed: int, size: int, tile: int, cls: str, style: str, outline: bool) -> np.ndarray:
    rgb, mask, meta = render_any(image_rng(seed, 0), size, size, cls, style)
    if outline:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        rgb = rgb.copy()
        cv2.drawContours(rgb, contours, -1, (0, 255, 255), max(1, size // 200), cv2.LINE_AA)
    small = cv2.resize(rgb, (tile, tile), interpolation=cv2.INTER_AREA)
    detail = meta.get("habit") or ""
    text = f"{style} / {cls}" + (f" / {detail}" if detail else "")
    label(small, text + (" +mask" if outline else ""))
    return small


def real_row(root: Path, tile: int, n: int) -> np.ndarray:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:n]
    tiles = []
    for p in paths:
        t = cv2.resize(read_image(p), (tile, tile), interpolation=cv2.INTER_AREA)
        label(t, f"REAL {p.parent.name}/{p.stem[:14]}")
        tiles.append(t)
    while len(tiles) < n:
        tiles.append(np.zeros((tile, tile, 3), np.uint8))
    return np.hstack(tiles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/contact-sheet.png"))
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--size", type=int, default=512, help="rendered size before shrinking")
    ap.add_argument("--tile", type=int, default=180)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--styles", default=",".join(ALL_STYLES))
    ap.add_argument("--random-rows", type=int, default=3,
                    help="rows of the random style (each image its own look and scene)")
    ap.add_argument("--real", type=Path, default=None, help="add real photos (never commit)")
    args = ap.parse_args()
    styles = args.styles.split(",")
    if RANDOM_STYLE in styles:
        styles = [s for s in styles if s != RANDOM_STYLE] + [RANDOM_STYLE] * args.random_rows
    rows = []
    for si, style in enumerate(styles):
        tiles = []
        for ci, cls in enumerate(DEFAULT_CLASSES):
            for k in range(args.per_class):
                seed = args.seed * 1000 + si * 100 + ci * 10 + k
                tiles.append(synth_tile(seed, args.size, args.tile, cls, style, outline=(k == 1)))
        rows.append(np.hstack(tiles))
    if args.real is not None:
        rows.append(real_row(args.real, args.tile, len(DEFAULT_CLASSES) * args.per_class))
        rows.append(real_row(args.real / "marco-gsk", args.tile,
                             len(DEFAULT_CLASSES) * args.per_class))
    sheet = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
