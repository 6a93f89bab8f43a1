"""`edgecrystal import onnx`: a bundle from ONNX models made elsewhere (PyTorch, timm, CHiMP...).

Each model is wrapped (wrap.py) to take the project's uint8 NHWC pixels, checked against the
original model fed the same pixels normalised by hand in numpy, and written as the bundle's
onnx/<model>.fp32.onnx, the file build-engines, verify, score, serve and bench start from. The
original file is kept in the bundle (imported/) and its hash, producer and the normalisation
recorded in bundle.json (the `imported` entry of the model's section).

Logits or probabilities: the original is run on check pictures; rows of values in [0, 1] that sum
to 1 are probabilities and are kept, anything else is logits and gets a Softmax (`--output`
overrides the guess). Finder outputs in [0, 1] are kept, others get a Sigmoid.

Never imports TensorFlow: onnx and ONNX Runtime only.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from .. import PREPROCESS_VERSION, preprocess
from ..bundle import Bundle
from ..errors import BundleError, UsageError, one_line, path_problem
from ..interface import CLASSIFIER_OUTPUT, FINDER_OUTPUT, INPUT_NAME
from . import wrap
from .wrap import Normalisation

if TYPE_CHECKING:
    import onnx

    from edgecrystal.converters.check_pictures import Parity

log = logging.getLogger(__name__)

IMPORTER_VERSION = "1"
OUTPUT_KINDS = ("auto", "logits", "probabilities")
CROP_MODES = ("finder", "none")
# Wrapped vs hand-normalised original, on probabilities (after the added Softmax/Sigmoid on both
# sides): the same float graph with a handful of extra element-wise nodes.
PARITY_TOLERANCE = 1e-4
# A row of probabilities sums to 1 within float rounding; logits almost never do.
SUM_TOLERANCE = 1e-3
CHECK_PICTURES = 8


class ImportedModel(TypedDict, total=False):
    """What the import did with one model (printed by the CLI)."""

    file: str | None  # None: a shipped finder whose bundle.json names no file
    input_size: int | None
    output_kind: str
    head: str
    max_abs_diff: float
    mean_abs_diff: float
    images: int
    tensorflow_check: Parity  # the SavedModel importer's whole-chain check


ImportSummary = dict[str, ImportedModel]  # {"finder"|"classifier": what was imported}


@dataclass(frozen=True)
class ModelSource:
    """One model to import and how its input is normalised."""

    path: Path
    norm: Normalisation
    input_size: int | None = None
    output: str = "auto"  # OUTPUT_KINDS
    origin: dict[str, object] | None = None  # extra provenance (the SavedModel importer's)
    # The model's output column for each bundle class, where the model orders them otherwise.
    class_order: list[int] | None = None


def import_onnx(bundle_path: Path, classifier: ModelSource, classes: list[str], *,
                crop: str = "finder", finder: ModelSource | None = None,
                force: bool = False) -> ImportSummary:
    """Write (or overwrite with `force`) a bundle holding the wrapped models. Returns a summary:
    {model: {"file", "input_size", "output_kind", "head", "max_abs_diff"...}}."""
    if crop not in CROP_MODES:
        raise UsageError(f"--crop must be finder or none (got {crop})")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise UsageError(f"--classes needs two or more distinct names (got {','.join(classes)})")
    shipped = crop == "finder" and finder is None
    if shipped:
        _check_shipped_finder()
    bundle = _new_bundle(bundle_path, classes, force)
    pictures = check_pictures()
    summary: ImportSummary = {}
    if shipped:
        summary["finder"] = _adopt_shipped_finder(bundle)
    elif crop == "finder":
        assert finder is not None
        summary["finder"] = _import_model(bundle, "finder", finder, pictures, classes)
    summary["classifier"] = _import_model(bundle, "classifier", classifier, pictures, classes,
                                          crop=crop)
    bundle.save()
    return summary


def _check_shipped_finder() -> None:
    """One line where `--crop finder` without `--finder` has no shipped finder to adopt."""
    from .. import pretrained

    try:
        pretrained.bundle_path("finder")
    except BundleError:
        raise UsageError("--crop finder needs --finder MODEL.onnx: this edgecrystal ships no "
                         "default finder (or use --crop none to classify the whole image)"
                         ) from None


def _adopt_shipped_finder(bundle: Bundle) -> ImportedModel:
    """The shipped finder already takes the project's contract: adopted as `train` adopts it
    (its Keras file, settings and current FP32 ONNX: build-engines keeps that one)."""
    from .. import pretrained

    source = pretrained.adopt_finder(bundle, save=False)  # saved with the classifier
    section = bundle.require("finder")
    log.info("finder: the shipped default finder from %s", source)
    return {"file": bundle.variant("finder", "fp32").get("file", section.get("model")),
            "input_size": section.get("input_size"), "output_kind": "probabilities",
            "head": "none (shipped)", "max_abs_diff": 0.0}


def _new_bundle(path: Path, classes: list[str], force: bool) -> Bundle:
    if path.exists() and not path.is_dir():
        raise UsageError(f"bundle path {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise UsageError(f"{path} is not empty; choose a new folder or add --force to "
                             "replace the bundle in it")
        if not (path / "bundle.json").is_file():
            raise UsageError(f"{path} is not empty and not a bundle; refusing to replace it")
        shutil.rmtree(path)
    return Bundle.open(path, create=True, classes=classes)


def check_pictures() -> np.ndarray:
    """Well-like pictures plus uniform noise: the inputs both sides of each check are fed."""
    from edgecrystal.converters.check_pictures import synthetic_wells

    rng = np.random.default_rng(13)
    wells = synthetic_wells(CHECK_PICTURES - 2, seed=13, size=224)
    noise = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    return np.stack([*wells, *noise])


def _import_model(bundle: Bundle, role: str, source: ModelSource, pictures: np.ndarray,
                  classes: list[str], crop: str = "finder") -> ImportedModel:
    import onnx

    from edgecrystal.converters.onnx_files import onnx_rel, set_metadata

    if (problem := path_problem(source.path, "file")) is not None:
        raise UsageError(f"--{role} {source.path} {problem}")
    try:
        original = onnx.load(str(source.path))
    except Exception as exc:  # onnx's DecodeError and friends
        raise UsageError(f"--{role} {source.path} is not an ONNX model: "
                         f"{one_line(exc)}") from None
    original = wrap.upgrade_opset(original)
    sig = wrap.signature(original)
    size = wrap.spatial_size(sig, source.norm.layout, source.input_size)
    inputs = np.stack([preprocess.resize(p, size) for p in pictures])
    reference = _run_original(original, source, inputs, role)
    if role == "classifier":
        kind = _classifier_output_kind(reference, len(classes), source.output, source.path)
        head = "softmax" if kind == "logits" else "none"
    else:
        _check_finder_output(reference, size, source.path)
        kind = _finder_output_kind(reference, source.output)
        head = "sigmoid" if kind == "logits" else "none"
    order = source.class_order if role == "classifier" else None
    wrapped = wrap.wrap(original, source.norm, size, role, head, order)
    set_metadata(wrapped, {
        "role": role, "classes": _json(classes), "preprocess_version": PREPROCESS_VERSION,
        "input_size": str(size), "input_dtype": "uint8", "input_layout": "NHWC",
        "precision": "fp32", "exporter": f"edgecrystal import {IMPORTER_VERSION}",
        "imported_from": source.path.name,
    })
    rel = onnx_rel(role, "fp32")
    out = bundle.path(rel)
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgecrystal.atomic import write_bytes

    write_bytes(out, wrapped.SerializeToString())
    diff = _parity(out, inputs, _as_contract(reference, role, head, sig, order))
    if diff["max_abs_diff"] > PARITY_TOLERANCE:
        out.unlink()
        raise BundleError(f"the wrapped {role} differs from {source.path.name} fed the same "
                          f"pixels normalised by hand by {diff['max_abs_diff']:.3g} (tolerance "
                          f"{PARITY_TOLERANCE:g}): check --layout/--mean/--std/--bgr")
    kept = f"imported/{role}.source.onnx"
    bundle.path(kept).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.path, bundle.path(kept))
    source_sha = bundle.register_file(kept)
    sha = bundle.register_file(rel)
    provenance = {
        "format": "onnx", "source": str(source.path.resolve()), "kept_as": kept,
        "sha256": source_sha, "producer": f"{original.producer_name} "
                                          f"{original.producer_version}".strip(),
        "opset": sig.opset, "input": {"name": sig.input_name, "shape": _shape(sig.input_dims)},
        "output": {"name": sig.output_name, "shape": _shape(sig.output_dims)},
        "normalisation": source.norm.as_dict(), "output_kind": kind,
        "output_kind_from": "--output" if source.output != "auto" else "measured",
        "head_added": head, "importer": IMPORTER_VERSION, **(source.origin or {}),
    }
    section: dict[str, object] = {"input_size": size, "profile": "imported", "imported": provenance}
    if role == "classifier":
        section.update({"crop": crop, "margin": preprocess.DEFAULT_MARGIN,
                        "backbone": "imported"})
    else:
        section.update({"threshold": preprocess.DEFAULT_THRESHOLD})
    bundle.set_section(role, section)
    bundle.section("onnx")[role] = {"fp32": {
        "file": rel, "precision": "fp32", "backends": ["onnxruntime", "tensorrt"],
        "sha256_source": source_sha, "opset": max(sig.opset, wrap.MIN_OPSET),
        "exporter": f"import-{IMPORTER_VERSION}", "sha256": sha, "input": INPUT_NAME,
        "input_dtype": "uint8",
        "output": CLASSIFIER_OUTPUT if role == "classifier" else FINDER_OUTPUT,
        "parity": {"reference": "original model, normalised by hand", **diff}}}
    log.info("%s: imported %s (%s, head %s, max diff %.2g)", role, source.path, kind, head,
             diff["max_abs_diff"])
    return {"file": rel, "input_size": size, "output_kind": kind, "head": head, **diff}


def _run_original(model: onnx.ModelProto, source: ModelSource, inputs: np.ndarray,
                  role: str) -> np.ndarray:
    """The original model on `inputs` normalised by hand (numpy), one image at a time so that
    a model exported with a fixed batch of 1 still runs."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own exception types
        raise UsageError(f"--{role} {source.path} does not load in ONNX Runtime: "
                         f"{one_line(exc)}") from None
    name = sess.get_inputs()[0].name
    kind = sess.get_inputs()[0].type
    dtype = {"tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(uint8)": np.uint8}.get(kind, np.float32)
    normalised = source.norm.apply(inputs)
    if dtype == np.uint8:
        normalised = np.clip(np.rint(normalised), 0, 255)
    normalised = normalised.astype(dtype)
    try:
        outputs = [sess.run(None, {name: normalised[i : i + 1]})[0]
                   for i in range(len(normalised))]
    except Exception as exc:  # ORT's own exception types
        raise UsageError(f"--{role} {source.path} fails on a normalised picture: "
                         f"{one_line(exc)} (check --layout and --input-size)") from None
    return np.concatenate(outputs).astype(np.float32)


def _classifier_output_kind(out: np.ndarray, num_classes: int, asked: str, path: Path) -> str:
    rows = out.reshape(len(out), -1)
    if rows.shape[1] != num_classes:
        raise UsageError(f"{path.name} gives {rows.shape[1]} scores per image but --classes "
                         f"names {num_classes}")
    if asked != "auto":
        return asked
    in_range = bool(np.all(rows >= -1e-6) and np.all(rows <= 1 + 1e-6))
    sums_to_one = bool(np.all(np.abs(rows.sum(axis=1) - 1.0) <= SUM_TOLERANCE))
    return "probabilities" if in_range and sums_to_one else "logits"


def _check_finder_output(out: np.ndarray, size: int, path: Path) -> None:
    """A drop-probability map at the input's size with one channel, or a one-line error."""
    shape = out.shape[1:]
    ok = shape in ((size, size, 1), (1, size, size), (size, size))
    if ok:
        return
    if len(shape) == 3 and shape[0] != shape[1] and shape[1] == shape[2]:
        channels, spatial = shape[0], shape[1:]  # N,C,H,W
    elif len(shape) == 3:
        channels, spatial = shape[2], shape[:2]  # N,H,W,C
    else:
        channels, spatial = 1, shape
    if channels != 1:
        raise UsageError(f"finder {path.name} gives {channels} channels per pixel "
                         f"(output shape {list(out.shape)}); edgecrystal needs one "
                         "drop-probability channel (export only the drop channel)")
    raise UsageError(f"finder {path.name} gives a {'x'.join(map(str, spatial))} mask for a "
                     f"{size}x{size} input (output shape {list(out.shape)}); edgecrystal needs "
                     "the mask at the input's size")


def _finder_output_kind(out: np.ndarray, asked: str) -> str:
    if asked != "auto":
        return asked
    return "probabilities" if float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6 \
        else "logits"


def _as_contract(out: np.ndarray, role: str, head: str, sig: wrap.Signature,
                 class_order: list[int] | None = None) -> np.ndarray:
    """The original's output by hand in the contract's form (the wrapped model's expected)."""
    if role == "classifier":
        rows = out.reshape(len(out), -1).astype(np.float64)
        if head == "softmax":
            rows = np.exp(rows - rows.max(axis=1, keepdims=True))
            rows /= rows.sum(axis=1, keepdims=True)
        return rows if class_order is None else rows[:, class_order]
    mask = out.astype(np.float64)
    if head == "sigmoid":
        mask = 1.0 / (1.0 + np.exp(-mask))
    layout = wrap.finder_output_layout(sig.output_dims)
    if layout == "nchw":
        mask = np.transpose(mask, (0, 2, 3, 1))
    elif layout == "nhw":
        mask = mask[..., None]
    return mask


def _parity(path: Path, inputs: np.ndarray, expected: np.ndarray) -> Parity:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The whole batch at once: the runtime batches, so a graph fixed to batch 1 must fail here.
    try:
        got = sess.run(None, {INPUT_NAME: inputs})[0]
    except Exception as exc:  # ORT's own exception types
        raise UsageError(f"the wrapped model does not run on a batch of {len(inputs)} "
                         f"({one_line(exc)}); re-export the model with a dynamic batch "
                         "axis") from None
    if got.shape != expected.shape:
        raise UsageError(f"the wrapped model gives shape {list(got.shape)} for a batch of "
                         f"{len(inputs)}, expected {list(expected.shape)}; re-export the model "
                         "with a dynamic batch axis")
    err = np.abs(got.astype(np.float64) - expected)
    return {"max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "images": len(inputs)}


def _shape(dims: tuple[int | str | None, ...]) -> list[int | str | None]:
    return list(dims)


def _json(value: object) -> str:
    import json

    return json.dumps(value)
