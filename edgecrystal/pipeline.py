"""finder -> crop -> classifier on a batch of image files, with per-stage timings.

Two stages with one contract, so callers can overlap them (decode the next batch while this one
runs): `read(paths)` touches no model and may run on any thread (the one decoder, in a small
thread pool: OpenCV decoding releases the GIL); `infer(loaded)` runs the models and must stay on
the thread that owns the backend (a CUDA context belongs to the thread that made it).
`score(paths)` is the two in a row. Inside `infer`: finder input (the one preprocessing) ->
finder (batched) -> mask at image size -> the crop step -> classifier (batched) -> one `Scored`
per file. A file that cannot be decoded becomes an error `Scored` with
the decoder's typed reason, and the rest of the batch goes on. Backends are `Runner`s: the
pipeline neither knows nor cares which one runs the models.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import preprocess
from .bundle import Bundle
from .errors import BundleError, ImageError
from .imageio import DEFAULT_MAX_PIXELS, load_image
from .runtime.base import Runner

STAGES = ("read", "finder", "crop", "classifier")
# Overlays are drawn on a copy no larger than this (a 5 MP PNG per drop would double the disk use).
PREVIEW_SIDE = 1024


@dataclass
class Scored:
    """What scoring one file gave; results.py turns it into the result file."""

    path: Path
    stat: os.stat_result | None  # taken just before reading: what the result vouches for
    status: str = "ok"  # "ok" | "error"
    label: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    found: bool = False
    searched: bool = True  # False when no finder ran (crop none): `found` means nothing then
    box: tuple[int, int, int, int] | None = None
    area_px: int = 0
    width: int = 0
    height: int = 0
    sha256: str | None = None
    size_bytes: int | None = None
    error_kind: str | None = None
    error_reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    outline: np.ndarray | None = None  # drop contour (original pixels), only for overlays
    preview: np.ndarray | None = None  # downscaled RGB pixels, only for overlays

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Loaded:
    """One file after the read stage: its `Scored` (an error one when it could not be decoded)
    and what the infer stage needs of its pixels. Opaque to callers: pass it to `infer`."""

    scored: Scored
    pixels: np.ndarray | None  # None: decoding failed, `scored` says why


@dataclass(frozen=True)
class ModelInfo:
    """Which models scored an image: recorded in every result file."""

    bundle: str
    fingerprint: str
    classes: tuple[str, ...]
    backend: str
    precision: str
    crop: str = "finder"  # "none": no finder ran, the classifier saw the whole image

    def as_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "fingerprint": self.fingerprint,
                "classes": list(self.classes), "backend": self.backend,
                "precision": self.precision, "crop": self.crop}


class Pipeline:
    """Holds the two runners and the bundle's crop settings; `score(paths)` is the whole job."""

    def __init__(self, bundle: Bundle, finder: Runner | None, classifier: Runner, *,
                 backend: str, precision: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                 read_threads: int = 2, outlines: bool = False) -> None:
        bundle.check_preprocess()
        cls_sec = bundle.require("classifier")
        self.crop_mode = bundle.crop
        if self.crop_mode not in preprocess.CROP_MODES:
            raise BundleError(f"bundle {bundle.root}: unknown classifier crop mode "
                              f"{self.crop_mode!r} (expected one of {preprocess.CROP_MODES})")
        # "manual" boxes exist only in training data: at runtime the finder stands in for them.
        self.use_finder = self.crop_mode in ("finder", "manual")
        if self.use_finder and finder is None:
            raise BundleError(f"bundle {bundle.root} crops with the finder but none was loaded")
        self.classes = tuple(bundle.classes)
        self.classifier_size = int(cls_sec.get("input_size") or classifier.input_size or 0)
        self.margin = bundle.margin
        finder_section = bundle.section("finder") if bundle.has("finder") else {}
        self.finder_size = int(finder_section.get("input_size")
                               or (finder.input_size if finder else 0) or 0)
        self.threshold = bundle.threshold
        self.finder = finder if self.use_finder else None
        self.classifier = classifier
        self.max_pixels = max_pixels
        self.outlines = outlines
        self.model = ModelInfo(str(bundle.root.resolve()),
                               bundle.runtime_fingerprint(backend, precision), self.classes,
                               backend, precision, self.crop_mode)
        self._pool = ThreadPoolExecutor(max(1, read_threads), thread_name_prefix="read")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for runner in (self.finder, self.classifier):
            if runner is not None:
                runner.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scoring
    def score(self, paths: list[Path]) -> list[Scored]:
        """Read and infer in a row: one `Scored` per path, in order."""
        return self.infer(self.read(paths))

    def read(self, paths: list[Path]) -> list[Loaded]:
        """The read stage: decode `paths` (no model runs; safe on any thread)."""
        return list(self._pool.map(self._read, paths))

    def infer(self, loaded: list[Loaded]) -> list[Scored]:
        """The infer stage: finder, crop and classifier for what `read` gave, on the backend's
        thread. One `Scored` per item, in order; unreadable files pass through as errors."""
        results = [item.scored for item in loaded]
        good = [(item.scored, item.pixels) for item in loaded if item.pixels is not None]
        if not good:
            return results
        pixels = [px for _, px in good]
        masks = self._find(pixels, [r for r, _ in good])
        crops = []
        for (r, px), mask in zip(good, masks, strict=True):
            t = time.perf_counter()
            crop = preprocess.crop_drop(px, mask, self.classifier_size,
                                        threshold=self.threshold, margin=self.margin)
            r.found, r.box, r.area_px = crop.found, crop.box, crop.area
            r.searched = self.finder is not None
            if self.outlines:
                r.outline = crop.outline
            crops.append(crop.pixels)
            r.timings_ms["crop"] = _ms(t)
        del pixels, masks
        t = time.perf_counter()
        probs = self.classifier.predict(np.stack(crops))
        per_image = _ms(t) / len(good)
        for (r, _), p in zip(good, probs, strict=True):
            r.scores = {c: float(v) for c, v in zip(self.classes, p, strict=True)}
            r.label = self.classes[int(np.argmax(p))]
            r.timings_ms["classifier"] = per_image
        return results

    def _read(self, path: Path) -> Loaded:
        t = time.perf_counter()
        try:
            st = os.stat(path)
        except OSError:
            st = None
        r = Scored(Path(path), st)
        try:
            img = load_image(path, self.max_pixels)
        except ImageError as exc:
            r.status, r.error_kind, r.error_reason = "error", exc.kind, exc.reason
            r.timings_ms["read"] = _ms(t)
            return Loaded(r, None)
        r.sha256, r.size_bytes = img.sha256, img.size_bytes
        r.width, r.height = img.width, img.height
        if self.outlines:
            r.preview = _preview(img.pixels)
        r.timings_ms["read"] = _ms(t)
        return Loaded(r, img.pixels)

    def _find(self, pixels: list[np.ndarray], results: list[Scored]) -> list[np.ndarray | None]:
        if self.finder is None:
            for r in results:
                r.timings_ms["finder"] = 0.0
            return [None] * len(pixels)
        t = time.perf_counter()
        batch = np.stack([preprocess.finder_input(px, self.finder_size) for px in pixels])
        probs = self.finder.predict(batch)
        per_image = _ms(t) / len(pixels)
        masks: list[np.ndarray | None] = []
        for r, px, prob in zip(results, pixels, probs, strict=True):
            r.timings_ms["finder"] = per_image
            masks.append(preprocess.mask_to_image(prob, px.shape[0], px.shape[1]))
        return masks


def _preview(rgb: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb.copy()
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)
