#!/usr/bin/env python
"""How hard is the synthetic data? A deliberately weak baseline: hand-made features of the
drop's inside (darkness, edges, blob responses, brownness) and a quadratic softmax regression,
trained on the first 75 % of a data set and scored on the rest.

    .venv/bin/edgecrystal synth /tmp/s --n 1000 && .venv/bin/python scripts/synth_baseline.py /tmp/s

Far from chance (25 %) means the classes are learnable from the drop; far from 100 % means a
trivial cue does not give them away. Needs masks (the project's labels.csv layout).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgecrystal.dataset import load_dataset
from edgecrystal.imageio import read_image


def features(rgb: np.ndarray, mask: np.ndarray) -> list[float]:
    img = rgb.astype(np.float32) / 255
    k = max(3, int(np.sqrt(mask.sum()) * 0.08))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0  # no meniscus
    g = img.mean(axis=2)
    g = g / max(float(np.median(g[inner])), 1e-3)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy)[inner]
    f = [float(np.mean(g[inner] < t)) for t in (0.95, 0.9, 0.8, 0.7, 0.5)]
    f += list(np.quantile(mag, [0.5, 0.9, 0.99, 0.999]))
    for s in (1, 2, 4):
        log = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), s), cv2.CV_32F)[inner] * s * s
        f += list(np.quantile(log, [0.001, 0.01, 0.99, 0.999]))
    dark = inner & (g < 0.85)
    rb = (img[..., 0] - img[..., 2]) / (img[..., 0] + img[..., 2] + 1e-3)
    f.append(float(rb[dark].mean() - rb[inner].mean()) if dark.any() else 0.0)
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="a synthetic data set with masks (edgecrystal synth)")
    ds = load_dataset(ap.parse_args().data)
    recs = [r for r in ds.records if r.mask is not None and r.label]
    classes = sorted({r.label for r in recs})
    x = np.array([features(read_image(r.image), read_image(r.mask)[..., 0] > 0) for r in recs])
    y = np.array([classes.index(r.label) for r in recs])
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x = np.hstack([x, x**2, np.ones((len(x), 1))])
    train = np.arange(len(x)) < int(len(x) * 0.75)
    w = np.zeros((x.shape[1], len(classes)))
    onehot = np.eye(len(classes))[y]
    for _ in range(3000):
        p = np.exp(x[train] @ w)
        p /= p.sum(1, keepdims=True)
        w -= 0.05 * (x[train].T @ (p - onehot[train]) / train.sum() + 1e-3 * w)
    pred = (x @ w).argmax(1)
    print(f"baseline accuracy: train {np.mean(pred[train] == y[train]):.3f}, "
          f"held-out {np.mean(pred[~train] == y[~train]):.3f} ({(~train).sum()} images)")
    print("confusion (rows true, columns predicted):", ", ".join(classes))
    cm = np.zeros((len(classes), len(classes)), int)
    np.add.at(cm, (y[~train], pred[~train]), 1)
    for cls, row in zip(classes, cm, strict=True):
        print(f"  {cls:<12} {' '.join(f'{v:4d}' for v in row)}")


if __name__ == "__main__":
    main()
