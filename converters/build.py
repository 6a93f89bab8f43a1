"""`edgecrystal build-engines`: ONNX variants, INT8 calibration, and TensorRT engines where a GPU
is, all hash-keyed so that re-running with nothing changed rebuilds nothing.

Steps per model: FP32 export (keras_to_onnx) -> FP16 (fp16) -> INT8 Q/DQ for TensorRT and for
ONNX Runtime (calibration.quantize, images chosen by calibration.select, the record kept in
bundle/calibration/) -> engines (edgecrystal.engines) into engines/<gpu>-sm<cc>-trt<version>/.
Each variant in bundle.json carries the sha256 of its source and the options that made it; a
variant whose key matches is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, TypeVar

import numpy as np

from edgecrystal import cpu_isa
from edgecrystal.bundle import MODELS, Bundle
from edgecrystal.engines import manifest
from edgecrystal.engines.store import engine_for
from edgecrystal.errors import BackendError, BundleError, UsageError
from edgecrystal.interface import INPUT_NAME, PRECISIONS

from .calibration_record import CalibrationRecord, CalibrationSettings, Int8Key
from .check_pictures import parity_batch
from .integrity import CALIB_DIR, damaged_files
from .integrity import PRECISION_OF as _PRECISION_OF
from .onnx_files import onnx_rel
from .staging import staged

if TYPE_CHECKING:
    from edgecrystal.calibration.select import CalibrationSet
    from edgecrystal.engines.trt_types import IInt8Calibrator

# INT8 collapse: outputs that vary over the images less than this share of the FP32 model's
# variation, or labels that agree with FP32's less often than COLLAPSE_AGREEMENT, mean the
# calibration failed (too few or too similar images). A model whose FP32 outputs hardly vary
# (untrained) is not INT8's fault and gets no warning.
COLLAPSE_SPREAD = 0.2
COLLAPSE_AGREEMENT = 0.5
FP16_CONVERTER = "1"
QUANTIZER = "7"  # ORT variant: 2 upsamples with Conv 1x1 + DepthToSpace; 3 moves data NHWC;
# 4 pools after 1x1 convs; 5 splits concat -> conv joins (4 and 5: when calibrating, or when
# the cached ranges cover their new tensors); 6 reads the pixels as the first quantised tensor;
# 7 picks the integer form by CPU family (the key's "form") and gates each variant
FP16_TOLERANCE = 2e-2


class QuantizeDetail(TypedDict):
    made: dict[str, dict[str, object]]  # variant -> int8_variant's summary
    summary: dict[str, object]  # which variant ONNX Runtime uses, and the timings


_T = TypeVar("_T")


@dataclass
class Options:
    precisions: tuple[str, ...] = PRECISIONS
    calib: Path | None = None
    # None: as the bundle's calibration record says (else the defaults below), so a plain
    # re-run of build-engines keeps what an earlier --calib-count/--calib-method/--seed made.
    calib_count: int | None = None
    calib_method: str | None = None
    seed: int | None = None
    opt_batch: int = 4
    max_batch: int = 16
    workspace_mb: int = 1024
    hardware_compat: bool = False
    legacy_int8_calibrator: bool = False
    force: bool = False
    # INT8 accuracy gate bounds, "agreement=0.98,dice_loss=0.01,rank=0.95,crystal_dice_loss=0.05"
    # (None: the defaults in calibration/gate.py).
    int8_gate: str | None = None
    dla_core: int | None = None  # engines for this DLA core instead of the GPU
    gpu_fallback: bool = False


@dataclass
class Report:
    steps: list[dict[str, object]] = field(default_factory=list)
    engines: str = ""  # one line about engines (built, kept, or why none)
    warnings: list[str] = field(default_factory=list)

    def add(self, what: str, model: str, precision: str, action: str, **detail: object) -> None:
        self.steps.append({"what": what, "model": model, "precision": precision,
                           "action": action, **detail})

    @property
    def made(self) -> list[dict[str, object]]:
        return [s for s in self.steps if s["action"] != "kept"]


def build_engines(root: Path, opts: Options,
                  log: Callable[[str], None] | None = None) -> Report:
    """Build in a staging copy of the bundle, swapped in only when everything succeeded
    (staging.py); a file whose bytes no longer match bundle.json is rebuilt or refused, never
    re-hashed (integrity.py)."""
    log = log or (lambda _msg: None)
    for p in opts.precisions:
        if p not in PRECISIONS:
            raise UsageError(f"--precision must be fp32, fp16, int8 or all (got {p})")
    bundle = Bundle.open(root)
    if not any(bundle.has(m) for m in MODELS):
        raise BundleError(f"bundle {root} has no models (train one first)")
    damaged = damaged_files(bundle)
    with staged(Path(root), log) as work:
        return _build(work, opts, log, damaged)


def _build(root: Path, opts: Options, log: Callable[[str], None],
           damaged: dict[str, str]) -> Report:
    bundle = Bundle.open(root)
    models = [m for m in MODELS if bundle.has(m)]
    report = Report()
    for rel, precision in sorted(damaged.items()):
        bundle.path(rel).unlink(missing_ok=True)
        log(f"{rel} no longer matches the hash in bundle.json: rebuilding {precision}")
    # Variants made from an older model are rebuilt whatever --precision asks for: a stale
    # FP16 or INT8 file must never go on scoring with the old weights. Nor a damaged one.
    stale = {_PRECISION_OF[name] for _model, name in bundle.stale_variants()}
    keras_changed = {model for model in models if bundle.is_stale(model, "fp32")}
    stale |= {_PRECISION_OF[name] for model in keras_changed for name in bundle.variants(model)}
    wanted = set(opts.precisions) | stale | set(damaged.values())
    for precision in sorted(stale - set(opts.precisions)):
        log(f"{precision} variants were made from an older model: rebuilding them too")
    from .keras_to_onnx import export_bundle

    for model, res in export_bundle(bundle, models=models, force=opts.force).items():
        report.add("onnx", model, "fp32", res["action"], max_abs_diff=res.get("max_abs_diff"))
        log(f"{model} fp32 onnx: {res['action']}")
    useless = bundle.require("classifier").get("useless") if "classifier" in models else None
    if useless:  # found by `train` on real images: engines of it score nothing
        report.warnings.append(f"warning: classifier: {useless}")
        log(report.warnings[-1])
    if "fp16" in wanted:
        for model in models:
            action, diff = make_fp16(bundle, model, opts.force)
            report.add("onnx", model, "fp16", action, max_abs_diff=diff)
            log(f"{model} fp16 onnx: {action}")
    if "int8" in wanted:
        make_int8(bundle, models, opts, report, log)
    bundle.save()
    report.engines = make_engines(bundle, models, opts, report, log)
    return report


# ----------------------------------------------------------------- FP16
def make_fp16(bundle: Bundle, model: str, force: bool) -> tuple[str, float | None]:
    from .fp16 import convert_file

    src = bundle.variant(model, "fp32")
    rel = onnx_rel(model, "fp16")
    key = {"sha256_source": src["sha256"], "converter": FP16_CONVERTER}
    entry = bundle.variant(model, "fp16")
    if not force and _matches(bundle, entry, rel, key):
        return "kept", entry.get("check", {}).get("max_abs_diff")
    convert_file(bundle.path(src["file"]), bundle.path(rel))
    diff = compare(bundle.path(src["file"]), bundle.path(rel), parity_batch(bundle, model, None))
    if not diff["max_abs_diff"] <= FP16_TOLERANCE:
        raise BundleError(f"{rel} differs from the FP32 model by {diff['max_abs_diff']:.3g} "
                          f"(tolerance {FP16_TOLERANCE:g}): FP16 overflows in this model")
    bundle.add_variant(model, "fp16", precision="fp16", backends=["tensorrt", "onnxruntime"],
                       key=key, source=src, check={"reference": "fp32", **diff})
    return "made", diff["max_abs_diff"]


def _matches(bundle: Bundle, entry: Mapping[str, object], rel: str,
             key: Mapping[str, object]) -> bool:
    return (bool(entry) and bundle.path(rel).is_file()
            and all(entry.get(k) == v for k, v in key.items()))


def compare(reference: Path, candidate: Path, batch: np.ndarray) -> dict[str, float]:
    import onnxruntime as ort

    a = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
    want = a.run(None, {INPUT_NAME: batch})[0].astype(np.float64)
    got = b.run(None, {INPUT_NAME: batch})[0].astype(np.float64)
    err = np.abs(got - want)
    return {"max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "images": len(batch), "agreement": _agreement(got, want),
            "output_std": _spread(got), "reference_std": _spread(want)}


def _spread(outputs: np.ndarray) -> float:
    """Mean over output values of their standard deviation across the images."""
    return float(outputs.std(axis=0).mean()) if len(outputs) > 1 else math.nan


def _agreement(got: np.ndarray, want: np.ndarray) -> float:
    """Share of images given the same label (classifier) or the same mask pixels (finder)."""
    if got.ndim == 2:
        return float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
    return float(np.mean((got >= 0.5) == (want >= 0.5)))


def collapse_warning(model: str, variant: str, check: Mapping[str, float]) -> str | None:
    """One line when an INT8 model lost most of FP32's variation over the images, or disagrees
    with its labels (a failed calibration: verify then reports chance-level AUC)."""
    std, reference = check.get("output_std", math.nan), check.get("reference_std", math.nan)
    agreement = check.get("agreement", math.nan)
    if std < COLLAPSE_SPREAD * reference or agreement < COLLAPSE_AGREEMENT:
        return (f"warning: {model} {variant} looks collapsed (output spread {std:.2g} against "
                f"fp32's {reference:.2g} over {check.get('images')} images, label agreement "
                f"{agreement:.2f}): calibrate on more, more varied images (--calib-count, "
                "--calib) or use fp16")
    return None


# ----------------------------------------------------------------- INT8
def _record_path(model: str) -> str:
    return f"{CALIB_DIR}/{model}.json"


def make_int8(bundle: Bundle, models: list[str], opts: Options, report: Report,
              log: Callable[[str], None]) -> None:
    from edgecrystal.calibration.quantize import form_for

    sets: dict[str, CalibrationSet] | None = None
    for model in models:
        src = bundle.variant(model, "fp32")
        record = _read_record(bundle, model)
        settings = calibration_settings(opts, record or _sibling_record(bundle, models), model)
        if not settings["data"]:
            raise UsageError("--precision int8 needs --calib DATA (the bundle has no "
                             f"calibration record for the {model})")
        key: Int8Key = {"sha256_source": src["sha256"], "quantizer": QUANTIZER,
                        "calibration": settings, "form": form_for()}
        if not opts.force and all(_matches(bundle, bundle.variant(model, v), onnx_rel(model, v),
                                           key) for v in ("int8", "int8-u8")):
            report.add("onnx", model, "int8", "kept")
            log(f"{model} int8 onnx: kept")
            _gate(bundle, model, settings, record.get("images", []), opts, report, log, False)
            continue
        reuse = (not opts.force and record.get("sha256_source") == src["sha256"]
                 and record.get("key") == key["calibration"]
                 and all(bundle.path(_ranges_rel(model, t)).is_file() for t in _TARGETS))
        if reuse:
            inputs = parity_batch(bundle, model, None)
            images = record.get("images", [])
            how = "reused calibration record"
        else:
            if sets is None:
                sets = _calibration_sets(bundle, models, settings)
            calibration = sets[model]
            inputs, images = calibration.inputs, calibration.images
            how = f"calibrated on {len(calibration.inputs)}"
            for t in _TARGETS:
                bundle.path(_ranges_rel(model, t)).unlink(missing_ok=True)
        detail = _quantize_model(bundle, model, inputs, settings["method"], key)
        _write_record(bundle, model, key, images, detail,
                      crop=getattr(sets.get(model) if sets else None, "crop", record.get("crop")))
        report.add("onnx", model, "int8", "made", how=how, **detail["summary"])
        log(f"{model} int8 onnx: made ({how}; ORT uses {detail['summary']['onnxruntime_uses']})")
        for variant in ("int8", "int8-u8"):
            warning = collapse_warning(model, variant, bundle.variant(model, variant)["check"])
            if warning:
                report.warnings.append(warning)
                log(warning)
        _gate(bundle, model, settings, images, opts, report, log, True)


def _gate(bundle: Bundle, model: str, settings: CalibrationSettings,
          images: list[dict[str, str]],
          opts: Options, report: Report, log: Callable[[str], None], made: bool) -> None:
    """The INT8 accuracy gate (converters/int8_gate.py) for `model`'s variants on this CPU
    family: again for variants just made, once per family for kept ones."""
    from .int8_gate import gate_variants

    def held_out(settings: CalibrationSettings, exclude: frozenset[str],
                 count: int) -> dict[str, CalibrationSet]:
        return _calibration_sets(bundle, [model], settings, exclude, count)

    for line, passed in gate_variants(bundle, model, ("int8", "int8-u8"), settings, images,
                                      held_out, opts.int8_gate, log, force=made):
        if not passed:
            report.warnings.append(line)


_TARGETS = ("tensorrt", "onnxruntime")
_VARIANT = {"tensorrt": "int8", "onnxruntime": "int8-u8"}


def _ranges_rel(model: str, target: str) -> str:
    return f"{CALIB_DIR}/{model}.{_VARIANT[target]}.ranges.json"


def calibration_settings(opts: Options, record: CalibrationRecord, model: str
                         ) -> CalibrationSettings:
    """What calibrates `model`: each of data, count, seed, method from the command line when
    given, else from the model's calibration record, else the defaults (the method's is the
    model's own: calibration.quantize.DEFAULT_METHOD)."""
    from edgecrystal.calibration.quantize import default_method
    from edgecrystal.calibration.select import DEFAULT_COUNT, check_count

    recorded: CalibrationSettings = record.get("key") or {}

    def pick(given: _T | None, from_record: _T) -> _T:
        return given if given is not None else from_record

    return {"data": str(Path(opts.calib).resolve()) if opts.calib else record.get("data"),
            "count": check_count(pick(opts.calib_count, recorded.get("count", DEFAULT_COUNT))),
            "seed": pick(opts.seed, recorded.get("seed", 0)),
            "method": pick(opts.calib_method, recorded.get("method", default_method(model)))}


def _calibration_sets(bundle: Bundle, models: list[str], settings: CalibrationSettings,
                      exclude: frozenset[str] = frozenset(),
                      count: int | None = None) -> dict[str, CalibrationSet]:
    from edgecrystal.calibration.select import calibration_sets
    from edgecrystal.results import is_own_output

    folder = settings.get("data")
    if not folder:  # make_int8 and the gate refuse this first; said here for any other caller
        raise UsageError("calibration needs --calib DATA (the bundle has no calibration record)")
    data = Path(folder)
    if not data.exists():
        raise UsageError(f"calibration data {data} does not exist")
    sizes = {m: bundle.input_size(m) for m in models}
    finder = None
    if bundle.variant("finder", "fp32"):
        finder = bundle.path(bundle.variant("finder", "fp32")["file"])
    return calibration_sets(data, sizes, count or settings["count"], settings["seed"], finder,
                            bundle.threshold, bundle.margin, bundle.crop_finder_size,
                            is_output=is_own_output,  # an image folder: not our overlays
                            exclude=exclude)


def _quantize_model(bundle: Bundle, model: str, inputs: np.ndarray, method: str,
                    key: Int8Key) -> QuantizeDetail:
    from edgecrystal.calibration.quantize import choose_for_ort, zero_points

    from .int8_gate import s8s8_exact
    from .int8_variant import int8_variant

    src = bundle.variant(model, "fp32")
    fp32 = bundle.path(src["file"])
    (bundle.root / CALIB_DIR).mkdir(exist_ok=True)
    made = {}
    for target in _TARGETS:
        variant = _VARIANT[target]
        rel = onnx_rel(model, variant)
        made[variant] = int8_variant(fp32, bundle.path(rel), inputs, target, method,
                                     ranges_cache=bundle.path(_ranges_rel(model, target)))
    bad = [n for n, z in zero_points(bundle.path(onnx_rel(model, "int8"))) if z != 0]
    if bad:
        raise BundleError(f"{onnx_rel(model, 'int8')} has non-zero zero points ({bad[0]}...): "
                          "TensorRT would reject it")
    check = parity_batch(bundle, model, None)
    timing = choose_for_ort(bundle.path(onnx_rel(model, "int8")),
                            bundle.path(onnx_rel(model, "int8-u8")), check,
                            s8_exact=s8s8_exact())
    ort_variant = timing["onnxruntime_uses"]
    for variant, info in made.items():
        rel = onnx_rel(model, variant)
        backends = (["tensorrt"] if variant == "int8" else []) + (
            ["onnxruntime"] if variant == ort_variant else [])
        # made_on: the CPU family whose form (key["form"]) the file has; the families it was
        # checked on are its "gate" records (converters/int8_gate.py).
        bundle.add_variant(model, variant, precision="int8", backends=backends, key=key,
                           source=src, quantization=info, ort_latency=timing,
                           made_on=cpu_isa.detect().family,
                           check={"reference": "fp32",
                                  **compare(fp32, bundle.path(rel), inputs[:32])})
    for target in _TARGETS:
        if bundle.path(_ranges_rel(model, target)).is_file():
            bundle.register_file(_ranges_rel(model, target))
    return {"made": made, "summary": {"onnxruntime_uses": ort_variant, **timing}}


def _read_record(bundle: Bundle, model: str) -> CalibrationRecord:
    path = bundle.path(_record_path(model))
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _sibling_record(bundle: Bundle, models: list[str]) -> CalibrationRecord:
    """What calibrated the bundle's other models, for a model with no record of its own (a
    crystal model added to a calibrated bundle): the same images calibrate every model, so a
    plain re-run needs no --calib. Only the image settings are taken, never the images, the
    ranges or the method (each model has its own default: calibration.quantize.DEFAULT_METHOD)."""
    for model in models:
        record = _read_record(bundle, model)
        if record.get("data"):
            key: CalibrationSettings = {**(record.get("key") or {})}
            key.pop("method", None)
            return {"data": record["data"], "key": key}
    return {}


def _write_record(bundle: Bundle, model: str, key: Int8Key, images: list[dict[str, str]],
                  detail: QuantizeDetail, crop: str | None) -> None:
    """calibration/<model>.json (what calibrated it, and the scales) and <model>.int8.cache
    (TensorRT calibration-cache text for the legacy calibrator)."""
    from edgecrystal.atomic import write_json, write_text
    from edgecrystal.calibration.quantize import qdq_scales, trt_cache_text

    scales = qdq_scales(bundle.path(onnx_rel(model, "int8")))
    cache_rel = f"{CALIB_DIR}/{model}.int8.cache"
    write_text(bundle.path(cache_rel), trt_cache_text(scales))
    record = {"model": model, "data": key["calibration"]["data"], "key": key["calibration"],
              "sha256_source": key["sha256_source"], "quantizer": key["quantizer"],
              "crop": crop, "images": images,
              "variants": detail["made"], "ort_choice": detail["summary"],
              "trt_cache": cache_rel, "scales": scales}
    write_json(bundle.path(_record_path(model)), record)
    for rel in (_record_path(model), cache_rel):
        bundle.register_file(rel)
    bundle.section("calibration")[model] = {
        "record": _record_path(model), "trt_cache": cache_rel, "images": len(images),
        "method": key["calibration"]["method"], "crop": crop}


# ----------------------------------------------------------------- engines
def make_engines(bundle: Bundle, models: list[str], opts: Options, report: Report,
                 log: Callable[[str], None]) -> str:
    identity = manifest.device_identity()
    if identity is None:
        return ("engines need an NVIDIA GPU with TensorRT: made and checked the ONNX variants "
                "only")
    from edgecrystal.engines.trt_build import BuildOptions

    folder = manifest.engines_folder(bundle.root, identity, opts.hardware_compat)
    for model in models:
        for precision in opts.precisions:
            if opts.dla_core is not None and precision == "fp32":
                continue  # DLA has no FP32; the FP32 ONNX is the others' source only
            legacy = precision == "int8" and opts.legacy_int8_calibrator
            source = bundle.onnx_variant(model, "fp32" if legacy else precision, "tensorrt")
            build_options = BuildOptions(precision=precision,
                                 opt_batch=opts.opt_batch, max_batch=opts.max_batch,
                                 workspace_mb=opts.workspace_mb,
                                 hardware_compat=opts.hardware_compat,
                                 dla_core=opts.dla_core, gpu_fallback=opts.gpu_fallback)
            if legacy:
                build_options.legacy_int8_calibrator = _legacy_calibrator(bundle, model, opts)
            before = _plan_sha(folder, manifest.engine_key(model, precision, opts.dla_core))
            plan = engine_for(bundle, model, precision, source, build_options, identity, opts.force,
                              progress=log)
            action = "kept" if before and before == _plan_sha(folder, plan.stem) else "made"
            report.add("engine", model, precision, action, file=str(plan.relative_to(bundle.root)))
            log(f"{model} {precision} engine: {action}")
    return f"engines for {manifest.describe(identity)} in {folder.relative_to(bundle.root)}"


def _plan_sha(folder: Path, key: str) -> str | None:
    try:
        return manifest.read_manifest(folder)["engines"].get(key, {}).get("sha256")
    except BackendError:
        return None


def _legacy_calibrator(bundle: Bundle, model: str, opts: Options) -> IInt8Calibrator:
    from edgecrystal.calibration.trt_calibrator import EntropyCalibrator

    if opts.calib is None:
        cache = bundle.path(f"{CALIB_DIR}/{model}.legacy.cache")
        if not cache.is_file():
            raise UsageError("--legacy-int8-calibrator needs --calib DATA (no legacy "
                             "calibration cache in the bundle)")
        return EntropyCalibrator(None, cache)
    sets = _calibration_sets(bundle, [model], calibration_settings(opts, {}, model))
    return EntropyCalibrator(sets[model].inputs, bundle.path(f"{CALIB_DIR}/{model}.legacy.cache"))
