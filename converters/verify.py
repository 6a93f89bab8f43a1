"""`edgecrystal verify`: every variant that can run here on the same images, the way Polygraphy
compares runners: Keras (the reference), ONNX FP32/FP16/INT8 in ONNX Runtime, TensorRT engines
that match this machine. Per variant: max/mean abs output difference against the reference,
label agreement, Dice against ground-truth masks (finder), ROC AUC (classifier), Dice against
the ONNX FP32 mask (crystals, `dice32`: what the INT8 gate measures), Spearman's rank correlation
with ONNX FP32 (per class for the classifier, over pixels for the finder and the crystal map:
does a precision keep FP32's order, which thresholds and ROC curves use?), and whether the scores
are continuous or lie on a quantisation grid (k/255: a quantised softmax, ties in every ranking).

All variants see identical inputs made by the runtime's preprocessing; the classifier's input is
the ground-truth-mask crop where the data has masks (else the whole image), and so is the crystal
model's (at its own input size), so the comparison is of models, not of finder-then-crop
pipelines. Each variant runs in the runner class that serves it (runtime.onnxruntime_runner,
runtime.tensorrt_runner; Keras: keras_backend).

Then the whole chain that ships: the same image files through every backend and precision that
can serve the bundle here (Keras, ONNX Runtime FP32/FP16/INT8, TensorRT), each opened by
session.open_pipeline as `score` and `serve` open it; the report's `pipeline` section holds
each one's calibrated scores per image (for ONNX Runtime FP32: exactly what `score` writes) and
their difference and label agreement against the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecrystal.bundle import MODELS, Bundle
from edgecrystal.collapse import useless_scores
from edgecrystal.errors import (
    BackendError,
    BundleError,
    DataError,
    EdgeCrystalError,
    UsageError,
    one_line,
)
from edgecrystal.interface import MAP_MODELS, PRECISIONS, REFERENCE_BACKEND

from .build import collapse_warning
from .int8_gate import map_threshold

BATCH = 8
# Quantised [0, 1] outputs land on k/d for these d: u8 (scale 1/255 or 1/256), s8 (1/127, 1/128).
GRID_DENOMINATORS = (255, 256, 127, 128)
GRID_TOLERANCE = 1e-6
# Scores on a grid this often (among those strictly between 0 and 1) are called stepped; by chance
# a continuous score lands within GRID_TOLERANCE of some k/d about 0.1 % of the time.
STEPPED_SHARE = 0.5
# The finder's rank correlation is taken over this many pixels (an even stride over all of them).
RANK_PIXELS = 200_000
# Each model's quality column: Dice against ground-truth masks, ROC AUC against labels, Dice
# against the ONNX FP32 crystal mask (no crystal ground truth is read here: `evaluate --crystals`
# measures boxes against real ones).
QUALITY = {"finder": "dice", "classifier": "auc", "crystals": "dice32"}


def run_verify(root: Path, data: Path, n: int = 32, seed: int = 0,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from edgecrystal import preprocess
    from edgecrystal.calibration.select import choose, load_pictures
    from edgecrystal.dataset import load_dataset

    log = log or (lambda _m: None)
    if n < 1:
        raise UsageError(f"--n must be at least 1 (got {n})")
    bundle = Bundle.open(root)
    models = [m for m in MODELS if bundle.has(m)]
    if not models:
        raise BundleError(f"bundle {root} has no models (train one first)")
    if not any(bundle.variants(m) for m in models):
        raise BundleError(f"bundle {root} has no ONNX variants; run `edgecrystal build-engines "
                          f"{root}` first")
    bundle.check_current()  # comparing variants of an older model would measure nothing
    dataset = load_dataset(data)
    pictures, skipped = load_pictures(choose(dataset.records, n, seed), 1)
    classes = bundle.classes
    result: dict[str, Any] = {"bundle": str(root), "data": str(data), "images": len(pictures),
                              "skipped": skipped, "models": {}}
    for model in models:
        size = bundle.input_size(model)
        if model == "finder":
            inputs = np.stack([preprocess.finder_input(picture, size)
                               for _, picture, _, _ in pictures])
        else:
            fsize = bundle.crop_finder_size
            inputs = np.stack([(preprocess.crop_drop(picture, mask, size, finder_size=fsize)
                                if mask is not None else
                                preprocess.full_image(picture, size, finder_size=fsize)).pixels
                               for _, picture, _, mask in pictures])
        outputs = {name: out for name, out in _run_variants(bundle, model, inputs, log)}
        if not outputs:
            raise DataError(f"no variant of the {model} could run here")
        ref_name = "keras" if "keras" in outputs else next(iter(outputs))
        ref = outputs[ref_name]
        # Rank correlation is asked of INT8 and FP16 against FP32, whatever `ref` is.
        rank_name = "onnx-fp32" if "onnx-fp32" in outputs else ref_name
        rows = {}
        threshold = map_threshold(bundle, model)
        for name, out in outputs.items():
            row: dict[str, object] = dict(_difference(out, ref, model, threshold))
            if model == "finder":
                row.update(_dice(out, pictures, threshold))
            elif model == "crystals":
                row["dice32"] = _mask_dice(out, outputs[rank_name], threshold)
            else:
                row.update(_auc(out, pictures, classes))
            row["rank_correlation"] = _rank_correlations(out, outputs[rank_name], model, classes)
            row["grid_share"] = grid_share(out)
            rows[name] = row
        result["models"][model] = {"reference": ref_name, "rank_reference": rank_name,
                                   "variants": rows, "gates": _gates(bundle, model)}
        if model == "classifier":  # verify said "continuous" about a useless model
            result["models"][model]["useless"] = useless_scores(ref, classes)
    if bundle.has("classifier"):
        result["pipeline"] = run_pipelines(bundle, [r.image for r, _, _, _ in pictures], log)
    return result


def _gates(bundle: Bundle, model: str) -> dict[str, str]:
    """build-engines' INT8 gate verdict of each INT8 variant on this CPU family, one line each
    (the line score and serve act on)."""
    from edgecrystal.calibration.gate import describe
    from edgecrystal.cpu_isa import detect

    family = detect().family
    lines = {}
    for name, entry in bundle.variants(model).items():
        if entry.get("precision") != "int8":
            continue
        gate = bundle.int8_gate(model, name, family)
        if gate:
            lines[name] = describe(model, name, gate)
        elif "onnxruntime" in entry.get("backends", []):
            lines[name] = (f"{model} {name}: not checked by the INT8 gate on {family} (score "
                           "and serve use fp32 for it here; run build-engines)")
    return lines


def _run_variants(bundle: Bundle, model: str, inputs: np.ndarray,
                  log: Callable[[str], None]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, outputs) of every variant of `model` that runs here, each through the runner
    class that serves it (Keras: the session's keras backend)."""
    if bundle.is_imported(model):
        log(f"{model}: imported, no Keras model; the reference is ONNX FP32")
    else:
        yield from _run_keras(bundle, model, inputs, log)
    yield from _run_onnx(bundle, model, inputs, log)
    yield from _run_engines(bundle, model, inputs, log)


def _run_keras(bundle: Bundle, model: str, inputs: np.ndarray,
               log: Callable[[str], None]) -> Iterator[tuple[str, np.ndarray]]:
    from edgecrystal.keras_backend import KerasRunner

    try:
        with KerasRunner(bundle.model_file(model)) as runner:
            outputs = _batched(runner.predict, inputs)
    except ImportError:
        log(f"{model}: Keras is not installed here; the reference is ONNX FP32")
        return
    except BundleError as exc:  # a bundle of ONNX files only: nothing to compare with Keras
        log(f"{model}: {exc}; the reference is ONNX FP32")
        return
    yield "keras", outputs


def _run_onnx(bundle: Bundle, model: str, inputs: np.ndarray,
              log: Callable[[str], None]) -> Iterator[tuple[str, np.ndarray]]:
    from edgecrystal.runtime.onnxruntime_runner import OnnxRuntimeRunner

    from .int8_gate import s8s8_exact

    for variant, entry in bundle.variants(model).items():
        path = bundle.path(entry["file"])
        if not path.is_file():
            log(f"{model} {variant}: {entry['file']} is missing; skipped")
            continue
        if variant == "int8" and not s8s8_exact():
            # TensorRT's s8 x s8 file: ONNX Runtime on x86 without VNNI saturates its pair sums,
            # so its numbers here would measure this CPU's kernels, not the variant.
            log(f"{model} int8 (TensorRT's s8 x s8) skipped: ONNX Runtime does not compute it "
                "exactly on this CPU")
            continue
        try:
            with OnnxRuntimeRunner(path) as runner:
                outputs = _batched(runner.predict, inputs)
        except BackendError as exc:
            raise BundleError(f"{entry['file']} does not load in ONNX Runtime: "
                              f"{one_line(exc)}") from None
        yield f"onnx-{variant}", outputs


def _run_engines(bundle: Bundle, model: str, inputs: np.ndarray,
                 log: Callable[[str], None]) -> Iterator[tuple[str, np.ndarray]]:
    from edgecrystal.engines import manifest

    identity = manifest.device_identity()
    if identity is None:
        log(f"{model}: TensorRT engines skipped (this machine has no NVIDIA GPU with TensorRT)")
        return
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    for precision in ("fp32", "fp16", "int8"):
        found = manifest.find_engine(bundle, model, precision, identity)
        if not isinstance(found, Path):
            log(f"{model} tensorrt {precision}: {found}")
            continue
        with TensorRTRunner(found) as runner:
            yield f"tensorrt-{precision}", _batched(runner.predict, inputs)


def run_pipelines(bundle: Bundle, paths: list[Path],
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The image files through every backend and precision that can serve the bundle here,
    each opened by session.open_pipeline exactly as `score` and `serve` open it: per variant
    the calibrated scores (what `score` writes in the result files), and their difference and
    label agreement against the reference (Keras where it runs, else ONNX Runtime FP32)."""
    from edgecrystal import keras_backend

    keras_backend.plug()
    scores: dict[str, list[list[float] | None]] = {}
    said: set[str] = set()
    for backend, precision in _served():
        rows = _pipeline_scores(bundle, backend, precision, paths)
        if isinstance(rows, str):  # why not: once per reason (no TensorRT: one line, not three)
            if rows not in said:
                log(f"pipeline {backend}-{precision}: not run ({rows})")
            said.add(rows)
        else:
            scores[f"{backend}-{precision}"] = rows
    if not scores:
        raise DataError("no backend could score the images here")
    reference = next((n for n in (f"{REFERENCE_BACKEND}-fp32", "onnxruntime-fp32")
                      if n in scores), next(iter(scores)))
    variants = {name: {**_pipeline_difference(rows, scores[reference]), "scores": rows}
                for name, rows in scores.items()}
    return {"reference": reference, "images": [str(p) for p in paths], "variants": variants}


def _served() -> list[tuple[str, str]]:
    """(backend, precision) of every way the session may open a bundle, the reference first.
    Not onnxruntime-trt: it would build TensorRT engines (minutes each) on first use, and the
    tensorrt rows already measure TensorRT's arithmetic on the engines this machine has."""
    return [(REFERENCE_BACKEND, "fp32"),
            *((backend, precision) for backend in ("onnxruntime", "tensorrt")
              for precision in PRECISIONS)]


def _pipeline_scores(bundle: Bundle, backend: str, precision: str,
                     paths: list[Path]) -> list[list[float] | None] | str:
    """Calibrated scores per image (None for one that failed), or the one line that says why
    this backend or precision cannot serve the bundle here."""
    from edgecrystal.session import open_pipeline

    try:
        pipeline = open_pipeline(bundle, backend=backend, precision=precision,
                                 allow_build=False)
    except (EdgeCrystalError, ImportError) as exc:
        return one_line(exc)
    with pipeline:
        fallback = pipeline.selection.fallback if pipeline.selection else None
        if fallback:  # FP32 under an INT8 label would mislead
            return fallback
        try:
            pipeline.activate()
        except (EdgeCrystalError, ImportError) as exc:
            return one_line(exc)
        rows: list[list[float] | None] = []
        for first in range(0, len(paths), BATCH):
            rows.extend([r.scores[c] for c in pipeline.classes] if r.ok else None
                        for r in pipeline.score(paths[first : first + BATCH]))
    return rows


def _pipeline_difference(rows: list[list[float] | None],
                         reference: list[list[float] | None]) -> dict[str, float]:
    """Against the reference, over the images both scored: the largest and mean absolute score
    difference and the share with the same label."""
    pairs = [(row, ref) for row, ref in zip(rows, reference, strict=True)
             if row is not None and ref is not None]
    if not pairs:
        return {"max_abs_diff": math.nan, "mean_abs_diff": math.nan, "agreement": math.nan,
                "compared": 0}
    out = np.asarray([row for row, _ in pairs], np.float64)
    ref = np.asarray([r for _, r in pairs], np.float64)
    err = np.abs(out - ref)
    return {"max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "agreement": float(np.mean(out.argmax(axis=1) == ref.argmax(axis=1))),
            "compared": len(pairs)}


def _batched(fn: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(fn(inputs[i : i + BATCH]), dtype=np.float32)
                           for i in range(0, len(inputs), BATCH)])


def _difference(out: np.ndarray, ref: np.ndarray, model: str,
                threshold: float) -> dict[str, float]:
    err = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    if model in MAP_MODELS:
        agree = float(np.mean((out >= threshold) == (ref >= threshold)))
    else:
        agree = float(np.mean(out.argmax(axis=1) == ref.argmax(axis=1)))
    # The spread over images (the collapse warning's measure); _auc replaces it for the
    # classifier with the spread over its labelled images.
    return {"max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "agreement": agree, "output_std": float(out.std(axis=0).mean())}


def _dice(prob: np.ndarray, pictures: list, threshold: float) -> dict[str, float]:
    from edgecrystal import metrics, preprocess

    scores = []
    for p, (_, picture, _, mask) in zip(prob, pictures, strict=True):
        if mask is None:
            continue
        full = preprocess.mask_to_image(p, picture.height, picture.width) >= threshold
        scores.append(metrics.dice(full, mask))
    return {"dice": float(np.mean(scores)) if scores else math.nan, "masks": len(scores)}


def _mask_dice(prob: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """Dice of each image's mask against the reference's at `threshold`, averaged (the INT8
    gate's measure: calibration.gate.measure)."""
    from edgecrystal.calibration.gate import measure

    return measure("crystals", prob, reference, threshold)["dice"]


def _auc(scores: np.ndarray, pictures: list, classes: list[str]) -> dict[str, float]:
    from edgecrystal import metrics

    index = {c: i for i, c in enumerate(classes)}
    keep = [i for i, (r, _, _, _) in enumerate(pictures) if r.label in index]
    if not keep:
        return {"auc": math.nan, "accuracy": math.nan, "labelled": 0}
    labels = np.array([index[pictures[i][0].label] for i in keep])
    probs = scores[keep]
    auc = metrics.roc_auc_ovr(labels, probs, classes)["macro"]
    return {"auc": float(auc), "accuracy": metrics.accuracy(labels, probs.argmax(axis=1)),
            "labelled": len(keep), "output_std": float(probs.std(axis=0).mean())}


def _rank_correlations(out: np.ndarray, fp32: np.ndarray, model: str,
                       classes: list[str]) -> dict[str, float]:
    """Spearman's rho against FP32: per class (classifier), over sampled pixels (finder)."""
    from edgecrystal import metrics

    if len(out) < 2:
        return {}
    if model in MAP_MODELS:
        stride = max(1, out.size // RANK_PIXELS)
        return {"mask": metrics.rank_correlation(out.ravel()[::stride], fp32.ravel()[::stride])}
    return {name: metrics.rank_correlation(out[:, i], fp32[:, i])
            for i, name in enumerate(classes[: out.shape[1]])}


def grid_share(scores: np.ndarray) -> float:
    """Share of the scores strictly inside (0, 1) that lie on a quantisation grid k/d (the d of
    GRID_DENOMINATORS that catches most): near 1 for a quantised output, near 0 for a float
    one. NaN where no score is strictly between 0 and 1 (saturated: nothing to tell)."""
    values = np.asarray(scores, np.float64).ravel()
    inside = values[(values > GRID_TOLERANCE) & (values < 1 - GRID_TOLERANCE)]
    if inside.size == 0:
        return math.nan
    shares = []
    for denominator in GRID_DENOMINATORS:
        steps = inside * denominator
        shares.append(float(np.mean(np.abs(steps - np.round(steps)) <=
                                    GRID_TOLERANCE * denominator)))
    return max(shares)


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['images']} images from {result['data']}"]
    notes: list[str] = []
    for model, info in result["models"].items():
        quality = QUALITY.get(model, "auc")
        rank_reference = info.get("rank_reference", info["reference"])
        lines.append(f"\n{model} (reference: {info['reference']}; rank correlation (Spearman) "
                     f"against {rank_reference})")
        first_row: dict[str, Any] = next(iter(info["variants"].values()), {})
        rank_names = list(first_row.get("rank_correlation", {}))
        lines.append(f"  {'variant':<20}{'max|diff|':>11}{'mean|diff|':>12}{'agree':>8}"
                     f"{quality:>8}" + "".join(f"{'rho ' + n[:9]:>15}" for n in rank_names)
                     + f"{'scores':>11}")
        for name, row in info["variants"].items():
            q = row.get(quality, math.nan)
            shown = f"{q:>8.4f}" if not math.isnan(q) else f"{'-':>8}"
            ranks = row.get("rank_correlation", {})
            lines.append(f"  {name:<20}{row['max_abs_diff']:>11.2e}{row['mean_abs_diff']:>12.2e}"
                         f"{row['agreement']:>8.3f}{shown}"
                         + "".join(f"{_number(ranks.get(n)):>15}" for n in rank_names)
                         + f"{_continuity(row.get('grid_share', math.nan)):>11}")
            if row.get("grid_share", 0.0) > STEPPED_SHARE:
                notes.append(f"warning: {model} {name} scores are quantised (most lie on a "
                             "k/255-like grid): ties blunt ROC curves and thresholds")
            reference = info["variants"].get(info["reference"], {})
            check = {"output_std": row.get("output_std", math.nan), "images": result["images"],
                     "reference_std": reference.get("output_std", math.nan),
                     "agreement": row["agreement"]}
            warning = collapse_warning(model, name, check) if "int8" in name else None
            if warning:
                notes.append(f"{warning} (its {quality} means little)")
        notes.extend(info.get("gates", {}).values())
        first: dict[str, Any] = next(iter(info["variants"].values()), {})
        if model == "finder" and first.get("masks") == 0:
            notes.append("finder: no Dice: none of these images has a drop mask")
        if info.get("useless"):
            notes.append(f"warning: {model}: {info['useless']}")
        if model == "classifier" and first.get("labelled") == 0:
            notes.append("classifier: no AUC: none of these images has a label in the "
                         "bundle's classes")
    lines.extend(_pipeline_table(result.get("pipeline")))
    return "\n".join(lines + (["", *notes] if notes else []))


def _pipeline_table(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = [f"\npipeline: the image files as `score` runs them (reference: "
             f"{section['reference']})",
             f"  {'variant':<20}{'max|diff|':>11}{'mean|diff|':>12}{'agree':>8}{'images':>8}"]
    for name, row in section["variants"].items():
        lines.append(f"  {name:<20}{row['max_abs_diff']:>11.2e}{row['mean_abs_diff']:>12.2e}"
                     f"{row['agreement']:>8.3f}{row['compared']:>8}")
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def _continuity(share: float) -> str:
    """'continuous', or 'stepped' where most scores lie on a quantisation grid."""
    if math.isnan(share):
        return "-"
    return "stepped" if share > STEPPED_SHARE else "continuous"
