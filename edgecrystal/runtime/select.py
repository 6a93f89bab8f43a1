"""Choosing and opening the backend for a bundle:
`--backend auto|onnxruntime|onnxruntime-trt|tensorrt`.

auto: TensorRT where an engine for this GPU and TensorRT version exists (or can be built from
the bundle's ONNX), else ONNX Runtime with its TensorRT execution provider where this
onnxruntime has it (runtime.ort_tensorrt), else ONNX Runtime on the CPU, and always one line
saying which and why (each fallback logged with its reason). `dla` puts models on DLA cores
({"finder": 0}: the finder on DLA core 0, the classifier on the GPU).
An engine whose manifest does not match this machine is never loaded. Finding and building
engines is edgecrystal.engines' work (TensorFlow-free); this module only asks it.

INT8 is run only as build-engines' accuracy gate allowed (calibration/gate.py, recorded per CPU
family in bundle.json): a variant that failed the gate is refused in one line; an ONNX Runtime
INT8 variant never checked on this CPU's family (edgecrystal/cpu_isa.py: its integer kernels
differ, and u8 x s8 saturates on x86 without VNNI) is not run: FP32 is, with one log line and
the reason in `Selection.fallback` (the result file's model.precision_fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import cpu_isa
from ..bundle import Bundle
from ..errors import BackendError, BundleError, EdgeCrystalError
from ..interface import BACKEND_CHOICES, PRECISIONS
from .base import Runner

ORT_TRT = "onnxruntime-trt"

log = logging.getLogger(__name__)


@dataclass
class Selection:
    """The opened runners and how they were chosen."""

    backend: str
    precision: str
    classifier: Runner
    finder: Runner | None
    reason: str
    notes: list[str] = field(default_factory=list)
    # Why another precision than the one asked for runs (INT8 not checked on this CPU), or None.
    fallback: str | None = None
    # The crystal model (on the finder's crop) where the bundle has one (`crystals` section).
    crystals: Runner | None = None

    def describe(self) -> str:
        return f"{self.backend} {self.precision}: {self.reason}"

    def close(self) -> None:
        for r in (self.finder, self.classifier, self.crystals):
            if r is not None:
                r.close()


def needs_finder(bundle: Bundle) -> bool:
    return str(bundle.require("classifier").get("crop", "finder")) != "none"


def open_runners(bundle: Bundle, *, backend: str = "auto", precision: str = "fp32",
                 threads: int = 0, providers: list[str] | None = None,
                 allow_build: bool = True, dla: dict[str, int] | None = None,
                 progress: Callable[[str], None] | None = None) -> Selection:
    if backend not in BACKEND_CHOICES:
        raise BackendError(f"unknown backend {backend!r}: choose one of "
                           f"{', '.join(BACKEND_CHOICES)}")
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}: choose one of "
                           f"{', '.join(PRECISIONS)}")
    models = bundle.runtime_models()  # the crystal model too where the bundle has one
    bundle.check_precision_current(models, precision)  # a stale variant on no backend
    dla = {m: c for m, c in (dla or {}).items() if m in models}
    if backend == "onnxruntime":
        return _open_ort(bundle, models, precision, threads, providers, "asked for")
    if backend == ORT_TRT:
        return _open_ort_trt(bundle, models, precision, threads, dla, "asked for")
    try:
        refused = bundle.int8_unusable(models, "tensorrt") if precision == "int8" else None
        if refused:  # with auto: ONNX Runtime's own INT8 file may still pass
            raise BackendError(refused)
        engines, why = _tensorrt_engines(bundle, models, precision, allow_build, dla, progress)
    except EdgeCrystalError as exc:
        if backend == "tensorrt":
            raise
        return _fall_back(bundle, models, precision, threads, providers, dla,
                          f"TensorRT not used: {exc}")
    try:
        selection = _open_trt(engines, precision, why)
    except EdgeCrystalError as exc:
        if backend == "tensorrt":
            raise
        return _fall_back(bundle, models, precision, threads, providers, dla,
                          f"TensorRT engine did not load: {exc}")
    log.info("backend tensorrt %s: %s", precision, why)
    return selection


def _fall_back(bundle: Bundle, models: list[str], precision: str, threads: int,
               providers: list[str] | None, dla: dict[str, int], reason: str) -> Selection:
    """--backend auto without raw TensorRT: ONNX Runtime's TensorRT provider where this
    onnxruntime has it, else ONNX Runtime as configured. The reason travels in the Selection,
    whose describe() every caller prints or logs: a warning here printed it twice."""
    try:
        selection = _open_ort_trt(bundle, models, precision, threads, dla, reason)
    except EdgeCrystalError as exc:
        reason = f"{reason}; {ORT_TRT} not used: {exc}"
        log.debug("%s; using ONNX Runtime", reason)
        return _open_ort(bundle, models, precision, threads, providers, reason)
    log.debug("%s; using %s", reason, ORT_TRT)
    return selection


def _open_ort_trt(bundle: Bundle, models: list[str], precision: str, threads: int,
                  dla: dict[str, int], reason: str) -> Selection:
    from .ort_tensorrt import OrtTensorRTRunner, unavailable_reason

    problem = unavailable_reason()
    if problem:
        raise BackendError(problem)
    # The provider builds TensorRT engines from TensorRT's own INT8 file: the same gate.
    refused = bundle.int8_unusable(models, "tensorrt") if precision == "int8" else None
    if refused:
        raise BackendError(refused)
    runners: dict[str, Runner] = {}
    try:
        for model in models:
            path = bundle.onnx_variant(model, precision, "tensorrt")
            runners[model] = OrtTensorRTRunner(path, bundle=bundle, precision=precision,
                                               threads=threads, dla_core=dla.get(model))
    except BaseException:
        for r in runners.values():
            r.close()
        raise
    described = runners["classifier"].describe()
    return Selection(ORT_TRT, precision, runners["classifier"], runners.get("finder"),
                     f"{reason} ({described})", crystals=runners.get("crystals"))


def int8_fallback(bundle: Bundle, models: list[str]) -> str | None:
    """Why ONNX Runtime must not run `models`' INT8 variants on this CPU (None: it may): they
    were not checked on this CPU family."""
    unchecked = bundle.int8_unchecked(models, cpu_isa.detect().family)
    return f"{unchecked}: its integer arithmetic may differ here" if unchecked else None


def _open_ort(bundle: Bundle, models: list[str], precision: str, threads: int,
              providers: list[str] | None, reason: str) -> Selection:
    from .onnxruntime_runner import OnnxRuntimeRunner

    if precision == "int8":
        refused = bundle.int8_unusable(models, "onnxruntime", cpu_isa.detect().family)
        if refused:
            raise BackendError(refused)
    fallback = int8_fallback(bundle, models) if precision == "int8" else None
    if fallback:
        log.warning("int8 not used: %s; scoring with fp32", fallback)
        precision = "fp32"
    runners: dict[str, Runner] = {}
    try:
        for model in models:
            path = bundle.onnx_variant(model, precision, "onnxruntime")
            runners[model] = OnnxRuntimeRunner(path, threads=threads, providers=providers)
    except BaseException:
        for r in runners.values():
            r.close()
        raise
    described = runners["classifier"].describe()
    return Selection("onnxruntime", precision, runners["classifier"], runners.get("finder"),
                     f"{reason} ({described})" + (f"; int8 not used: {fallback}" if fallback
                                                  else ""), fallback=fallback,
                     crystals=runners.get("crystals"))


def _open_trt(engines: dict[str, Path], precision: str, why: str) -> Selection:
    from edgecrystal.engines.manifest import entry_for

    from .tensorrt_runner import TensorRTRunner

    runners: dict[str, Runner] = {}
    try:
        for model, path in engines.items():
            entry = entry_for(path)
            core = entry.get("options", {}).get("dla_core")
            runners[model] = TensorRTRunner(path, dla_core=core, placement=entry.get("placement"))
    except BaseException:
        for r in runners.values():
            r.close()
        raise
    where = "; ".join(f"{m} {r.describe()}" for m, r in runners.items()
                      if getattr(r, "dla_core", None) is not None)
    why = f"{why}; {where}" if where else why
    return Selection("tensorrt", precision, runners["classifier"], runners.get("finder"), why,
                     crystals=runners.get("crystals"))


def _tensorrt_engines(bundle: Bundle, models: list[str], precision: str, allow_build: bool,
                      dla: dict[str, int] | None = None,
                      progress: Callable[[str], None] | None = None,
                      ) -> tuple[dict[str, Path], str]:
    """Engine files for this machine, or a BackendError saying in one line why there are none.
    Manifest matching and building are edgecrystal.engines' (no TensorFlow anywhere below)."""
    from edgecrystal.engines import manifest, store
    from edgecrystal.engines.device import probe_device
    from edgecrystal.engines.tensorrt_module import load_tensorrt
    from edgecrystal.engines.trt_build import BuildOptions

    load_tensorrt()  # one clear BackendError where TensorRT cannot be used
    probe = probe_device()
    if probe.identity is None:
        raise BackendError(f"no GPU for TensorRT ({probe.reason})")
    engines: dict[str, Path] = {}
    built = []
    for model in models:
        core = (dla or {}).get(model)
        found = manifest.find_engine(bundle, model, precision, probe.identity, core)
        if isinstance(found, Path):
            engines[model] = found
            continue
        # `found` is the reason no engine matches (none built, other GPU, other TensorRT).
        if not allow_build:
            raise BackendError(f"{model}: {found}; engine building is off")
        try:
            onnx = bundle.onnx_variant(model, precision, "tensorrt")
        except BundleError as exc:
            raise BackendError(f"{model}: {found}, and no ONNX to build from ({exc})") from None
        log.info("%s %s: %s; building the engine", model, precision, found)
        # A DLA engine built at start gets GPU_FALLBACK: every edgecrystal model begins with a
        # uint8 -> float cast DLA cannot run.
        options = BuildOptions(precision=precision, dla_core=core, gpu_fallback=core is not None)
        engines[model] = store.engine_for(bundle, model, precision, onnx, options,
                                          identity=probe.identity, progress=progress)
        built.append(model)
    why = (f"built engines for {', '.join(built)} on this GPU" if built
           else "engines match this GPU and TensorRT version")
    return engines, why
