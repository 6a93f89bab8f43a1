"""finder -> crop -> classifier on a batch of image files, with per-stage timings.

Two stages with one contract, so callers can overlap them (decode the next batch while this one
runs): `read(paths)` touches no model and may run on any thread (the one decoder, in a small
thread pool: OpenCV decoding releases the GIL); `infer(loaded)` runs the models and must stay on
the thread that owns the backend (a CUDA context belongs to the thread that made it).
`score(paths)` is the two in a row. `read` checks each file and decodes it only as far as the
finder needs (a JPEG at 1/2 to 1/8, libjpeg's DCT scaling) and makes the finder input (the one
preprocessing); `infer`: finder (batched) -> drop region at the finder's resolution -> the crop
step (cut from the coarsest decode that spans the classifier's input) -> classifier (batched)
-> the crystal model (batched, where the bundle has one) on the same crop (cut again at its own
size when that differs from the classifier's), its maps turned into crystal boxes in the
original image's pixels (crystal_boxes.from_probability) -> one `Scored` per file. A file that
cannot be decoded becomes an error `Scored` with the decoder's typed reason, and the rest of
the batch goes on. Backends are `Runner`s: the pipeline neither knows nor cares which one runs
the models.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import preprocess
from .bundle import Bundle
from .confidence import CRYSTALS, Confidence, uncertain
from .crystal_boxes import CrystalBox, CrystalSettings, best_score, from_probability
from .errors import BundleError, ImageError
from .imageio import DEFAULT_MAX_PIXELS, Picture, load_picture
from .runtime.base import Runner

if TYPE_CHECKING:
    from .runtime.select import Selection

# "crystals" runs only where the bundle has a crystal model (timings_ms has it only then).
STAGES = ("read", "finder", "crop", "classifier", "crystals")
# Overlays are drawn on a copy no larger than this (a 5 MP PNG per drop would double the disk use).
PREVIEW_SIDE = 1024


@dataclass
class Scored:
    """What scoring one file gave; results.py turns it into the result file."""

    path: Path
    stat: os.stat_result | None  # taken just before reading: what the result vouches for
    status: str = "ok"  # "ok" | "error"
    label: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # calibrated (bundle's confidence)
    model_scores: dict[str, float] = field(default_factory=dict)  # the model's own, for fits
    crystals_hit: bool | None = None  # None: the class list has no crystals
    uncertain: bool | None = None
    # Crystal boxes in original pixels (crystal_boxes.py); None: the bundle has no crystal model.
    crystals: list[CrystalBox] | None = None
    found: bool = False
    # Why no drop was found when the finder ran: preprocess.NO_EDGE, TOO_SMALL or OUTSIDE_WELL.
    drop_reason: str | None = None
    searched: bool = True  # False when no finder ran (crop none): `found` means nothing then
    box: tuple[int, int, int, int] | None = None
    area_px: int = 0
    width: int = 0
    height: int = 0
    sha256: str | None = None
    size_bytes: int | None = None
    error_kind: str | None = None
    error_reason: str | None = None
    # Problems of a file that still scored ("corrupt JPEG data: ..."): status stays ok.
    warnings: list[str] = field(default_factory=list)
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
    # The file, checked and decoded only as far as the finder needs; the crop decodes what it
    # needs of it later. None: reading failed, `scored` says why.
    picture: Picture | None
    finder_input: np.ndarray | None = None  # made here, off the backend's thread


@dataclass(frozen=True)
class ModelInfo:
    """Which models scored an image: recorded in every result file."""

    bundle: str
    fingerprint: str
    classes: tuple[str, ...]
    backend: str
    precision: str
    crop: str = "finder"  # "none": no finder ran, the classifier saw the whole image
    confidence: Confidence = field(default_factory=Confidence)
    # Why `precision` is not the one asked for (INT8 not checked on this CPU family), or None.
    precision_fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        record = {"bundle": self.bundle, "fingerprint": self.fingerprint,
                  "classes": list(self.classes), "backend": self.backend,
                  "precision": self.precision, "crop": self.crop,
                  "confidence": self.confidence.as_record()}
        if self.precision_fallback:
            record["precision_fallback"] = self.precision_fallback
        return record


class Pipeline:
    """Holds the runners (finder, classifier, and the crystal model where the bundle has one)
    and the bundle's crop settings; `score(paths)` is the whole job. Made by
    session.open_pipeline (the one place that opens a bundle's runners); the runners load on
    first use, or at `activate()`."""

    def __init__(self, bundle: Bundle, finder: Runner | None, classifier: Runner, *,
                 backend: str, precision: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                 read_threads: int = 2, outlines: bool = False,
                 precision_fallback: str | None = None,
                 selection: Selection | None = None, crystals: Runner | None = None) -> None:
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
        # The crystal model and how its maps become boxes; both None without one.
        self.crystals: Runner | None = None
        self.crystal_settings: CrystalSettings | None = None
        if bundle.has("crystals"):
            if crystals is None:
                raise BundleError(f"bundle {bundle.root} has a crystal model but none was loaded")
            self.crystals = crystals
            section = bundle.section("crystals")
            # The runner's own size only where the section has none: asking it loads the model.
            self.crystal_settings = CrystalSettings.from_section(
                section, int(section.get("input_size") or crystals.input_size or 0))
            if self.crystal_settings.input_size <= 0:
                raise BundleError(f"bundle {bundle.root}: the crystals section has no input_size")
        # At another size than the classifier's the crystal stage cuts its own crop, and needs
        # each image's finder mask until then; at the same size it reuses the classifier's.
        self._recut = (self.crystal_settings is not None
                       and self.crystal_settings.input_size != self.classifier_size)
        self.max_pixels = max_pixels
        self.outlines = outlines
        self.confidence = bundle.confidence()
        self.model = ModelInfo(str(bundle.root.resolve()),
                               bundle.runtime_fingerprint(backend, precision), self.classes,
                               backend, precision, self.crop_mode, self.confidence,
                               precision_fallback)
        # How the runners were chosen (session.open_pipeline): describe() for logs and reports.
        self.selection = selection
        self._pool = ThreadPoolExecutor(max(1, read_threads), thread_name_prefix="read")

    def activate(self) -> None:
        """Load the models now (the first `infer` does otherwise): a model that cannot load
        fails here, before any image."""
        for runner in self._runners():
            runner.activate()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for runner in self._runners():
            runner.close()

    def _runners(self) -> list[Runner]:
        return [r for r in (self.finder, self.classifier, self.crystals) if r is not None]

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scoring
    def score(self, paths: list[Path]) -> list[Scored]:
        """Read and infer in a row: one `Scored` per path, in order."""
        return self.infer(self.read(paths))

    def read(self, paths: list[Path]) -> list[Loaded]:
        """The read stage: decode `paths` (no model runs; safe on any thread). A batch's files
        decode on the read threads at once; a lone file on the calling thread (a hand-off to
        a pool thread and back only adds to its latency)."""
        if len(paths) == 1:
            return [self._read(paths[0])]
        return list(self._pool.map(self._read, paths))

    def infer(self, loaded: list[Loaded]) -> list[Scored]:
        """The infer stage: finder, crop and classifier for what `read` gave, on the backend's
        thread. One `Scored` per item, in order; unreadable files pass through as errors."""
        results = [item.scored for item in loaded]
        good = [item for item in loaded if item.picture is not None]
        if not good:
            return results
        self.activate()
        masks = self._find(good)
        scored: list[Scored] = []
        crops: list[np.ndarray] = []
        # What the crystal stage cuts again from (only then are the masks kept past here).
        cut: list[tuple[Loaded, np.ndarray | None]] = []
        for item, mask in zip(good, masks, strict=True):
            crop = self._crop(item, mask)
            if crop is not None:
                scored.append(item.scored)
                crops.append(crop)
                if self._recut:
                    cut.append((item, mask))
        del masks
        if not crops:
            return results
        t = time.perf_counter()
        probs = self.classifier.predict(np.stack(crops))
        # The bundle's calibration comes after the model, here and only here (docs/results.md).
        calibrated = self.confidence.calibrate(probs)
        hits = self.confidence.crystals_hit(self.classes, calibrated)
        per_image = _ms(t) / len(crops)
        self._find_crystals(scored, crops, cut, hits)
        agree = self.crystal_settings.agree_score if self.crystal_settings else None
        for k, (r, p, c) in enumerate(zip(scored, probs, calibrated, strict=True)):
            r.model_scores = {name: float(v) for name, v in zip(self.classes, p, strict=True)}
            r.scores = {name: float(v) for name, v in zip(self.classes, c, strict=True)}
            r.label = self.classes[int(np.argmax(c))]
            r.crystals_hit = None if hits is None else bool(hits[k])
            # The crystal model's most certain box against the label (confidence.uncertain).
            r.uncertain = uncertain(c, label=r.label if CRYSTALS in self.classes else None,
                                    crystal_score=best_score(r.crystals), agree_score=agree)
            r.timings_ms["classifier"] = per_image
        return results

    def _find_crystals(self, scored: list[Scored], crops: list[np.ndarray],
                       cut: list[tuple[Loaded, np.ndarray | None]],
                       hits: np.ndarray | None) -> None:
        """The crystal stage: the crystal model (batched) on the crop the classifier saw, each
        map turned into boxes in the original image's pixels (the crop's box, `Scored.box`,
        places them). At the classifier's size the classifier's own crop arrays go in (the
        shipped models share it); at another size the same region is cut again at the crystal
        model's size by the one crop step (`cut`: each crop's picture and finder mask), so it
        sees the drop at its own resolution, not a resize of a smaller crop. Nothing without a
        crystal model (crystals stay None). With `hits_only` (the default) only the drops the
        classifier flags crystals_hit (`hits`) are searched; the others get no boxes ([])."""
        if self.crystals is None or self.crystal_settings is None:
            return
        settings = self.crystal_settings
        t = time.perf_counter()
        searched = [k for k in range(len(crops))
                    if hits is None or not settings.hits_only or hits[k]]
        for r in scored:
            r.crystals = []
        if searched:
            if self._recut:
                inputs = [self._crystal_crop(cut[k][0], cut[k][1], crops[k], settings.input_size)
                          for k in searched]
            else:
                inputs = [crops[k] for k in searched]
            maps = self.crystals.predict(np.stack(inputs))
            for k, prob in zip(searched, maps, strict=True):
                r = scored[k]
                box = r.box or (0, 0, r.width, r.height)
                r.crystals = from_probability(prob, box, threshold=settings.threshold,
                                              min_area=settings.min_area)
        per_image = _ms(t) / len(crops)
        for r in scored:
            r.timings_ms["crystals"] = per_image

    def _crystal_crop(self, item: Loaded, mask: np.ndarray | None, crop: np.ndarray,
                      size: int) -> np.ndarray:
        """The crop step at the crystal model's size (the classifier's crop region: same mask,
        threshold, margin and decode rule). A finer decode that fails here (the classifier's
        crop was cut already) resizes the classifier's crop instead, and the result says so."""
        assert item.picture is not None
        try:
            return preprocess.crop_drop(item.picture, mask, size, threshold=self.threshold,
                                        margin=self.margin,
                                        finder_size=self.finder_size if self.finder else 0).pixels
        except ImageError as exc:
            item.scored.warnings.append(f"crystal model saw the classifier's crop resized: "
                                        f"{exc.reason}")
            return preprocess.resize(crop, size)

    def _read(self, path: Path) -> Loaded:
        t = time.perf_counter()
        try:
            st = os.stat(path)
        except OSError:
            st = None
        r = Scored(Path(path), st)
        try:
            picture = load_picture(path, self.max_pixels)
            finder_input = (preprocess.finder_input(picture, self.finder_size)
                            if self.finder is not None else None)
            if self.outlines:
                r.preview = _preview(picture)
        except ImageError as exc:
            _failed(r, exc)
            r.timings_ms["read"] = _ms(t)
            return Loaded(r, None)
        r.sha256, r.size_bytes = picture.sha256, picture.size_bytes
        r.warnings = list(picture.warnings)
        r.width, r.height = picture.width, picture.height
        r.timings_ms["read"] = _ms(t)
        return Loaded(r, picture, finder_input)

    def _find(self, good: list[Loaded]) -> list[np.ndarray | None]:
        """The finder's probabilities at its own resolution (the crop step maps them)."""
        if self.finder is None:
            for item in good:
                item.scored.timings_ms["finder"] = 0.0
            return [None] * len(good)
        t = time.perf_counter()
        # `_read` made a finder input for every picture whenever a finder is loaded.
        inputs = [item.finder_input for item in good if item.finder_input is not None]
        probs = self.finder.predict(np.stack(inputs))
        per_image = _ms(t) / len(good)
        for item in good:
            item.scored.timings_ms["finder"] = per_image
        return list(probs)

    def _crop(self, item: Loaded, mask: np.ndarray | None) -> np.ndarray | None:
        """The crop step for one image; None when the finer decode it needed failed (the
        image's `Scored` then says why)."""
        assert item.picture is not None
        r = item.scored
        t = time.perf_counter()
        try:
            crop = preprocess.crop_drop(item.picture, mask, self.classifier_size,
                                        threshold=self.threshold, margin=self.margin,
                                        finder_size=self.finder_size if self.finder else 0)
        except ImageError as exc:
            _failed(r, exc)
            return None
        r.found, r.box, r.area_px = crop.found, crop.box, crop.area
        r.drop_reason = crop.reason
        r.searched = self.finder is not None
        if self.outlines:
            r.outline = crop.outline
        r.timings_ms["crop"] = _ms(t)
        return crop.pixels


def _failed(scored: Scored, exc: ImageError) -> None:
    scored.status, scored.error_kind, scored.error_reason = "error", exc.kind, exc.reason


def _preview(picture: Picture, side: int = PREVIEW_SIDE) -> np.ndarray:
    """A copy no larger than `side`, from the coarsest decode that still has `side` pixels."""
    import cv2

    long_side = max(picture.width, picture.height)
    wanted = min(side, long_side)
    reduction = preprocess.coarsest(picture, wanted * picture.width / long_side,
                                    wanted * picture.height / long_side)
    rgb = picture.pixels(reduction)
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb.copy()
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)
