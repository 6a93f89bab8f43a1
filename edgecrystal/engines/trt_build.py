"""ONNX -> TensorRT engine (a serialized .plan), for every TensorRT from 8.5 to 11.

What changes across versions, and what this module does about it:
- Network flags: EXPLICIT_BATCH is required before 10, deprecated (ignored) in 10 and gone in 11;
  STRONGLY_TYPED exists from 10 (always on, flag ignored, in 11). Strongly typed is used wherever
  it exists: the ONNX states the precision (FP16 tensors, INT8 Q/DQ).
- BuilderFlag.FP16 / INT8: only for a weakly typed network (TensorRT < 10, or the legacy
  calibrator path) and only where the version still has them. On 8.5/8.6 a Q/DQ network still
  needs the INT8 flag for its Q/DQ to be honoured, and an FP16 ONNX the FP16 flag.
- The implicit calibrator (IInt8EntropyCalibrator2) for TensorRT < 10 on request only.
- set_memory_pool_limit (8.4+), timing cache (create/serialize), hardware_compatibility_level
  (8.6+), uint8 network inputs (ONNX parser 8.5+).
- TF32: on by default in every version; an FP32 engine clears it (strict FP32, so it matches
  ONNX Runtime's FP32 within the FP32 tolerance) unless BuildOptions.tf32 asks for it.
- DLA (BuildOptions.dla_core): checked against the version matrix and the board before parsing,
  static profile (min = opt = max = opt_batch), GPU_FALLBACK on request (engines.dla).
Nothing here runs without TensorRT and a GPU; tensorrt loads inside the functions
(tensorrt_module.load_tensorrt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypedDict

from edgecrystal.errors import BackendError, UsageError

from . import dla
from .tensorrt_module import load_tensorrt, version_tuple

if TYPE_CHECKING:
    from .trt_types import (
        IBuilder,
        IBuilderConfig,
        IInt8Calibrator,
        INetworkDefinition,
        IOnnxParser,
        ITimingCache,
    )


class BuildFacts(TypedDict):
    """What build_plan did (engine.json records parts of it)."""

    tensorrt: str
    profile: dict[str, list[int]]  # "min"/"opt"/"max" input shapes
    input_dtype: str
    strongly_typed: bool
    builder_flags: list[str]
    build_seconds: float
    placement: dla.Placement | None  # where the layers run, for a DLA engine


@dataclass
class BuildOptions:
    precision: str  # what the ONNX states: fp32 | fp16 | int8
    min_batch: int = 1
    opt_batch: int = 4
    max_batch: int = 16
    workspace_mb: int = 1024
    hardware_compat: bool = False
    # TF32 math in an FP32 engine (faster on Ampere+, ~1e-3 relative error); off: strict FP32.
    tf32: bool = False
    # Weakly typed network + builder flags + implicit calibrator (TensorRT < 10 only).
    legacy_int8_calibrator: IInt8Calibrator | None = None
    # A DLA core (Orin NX / AGX Orin) instead of the GPU; layers DLA cannot run go to the GPU
    # only with gpu_fallback.
    dla_core: int | None = None
    gpu_fallback: bool = False

    def check(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise UsageError(f"batch sizes must satisfy 1 <= min <= opt <= max (got "
                             f"{self.min_batch}, {self.opt_batch}, {self.max_batch})")
        if self.workspace_mb < 16:
            raise UsageError(f"--workspace must be at least 16 MB (got {self.workspace_mb})")
        if self.dla_core is not None and self.dla_core < 0:
            raise UsageError(f"--dla-core must be 0 or more (got {self.dla_core})")
        if self.gpu_fallback and self.dla_core is None:
            raise UsageError("--gpu-fallback goes with --dla-core N (layers DLA cannot run go "
                             "to the GPU); without a DLA core everything runs on the GPU")
        if self.dla_core is not None and self.hardware_compat:
            raise UsageError("--dla-core and --hardware-compat do not go together: DLA engines "
                             "are built for one board")

    @property
    def batches(self) -> list[int]:
        """[min, opt, max] of the profile: one static batch (opt) for DLA."""
        if self.dla_core is not None:
            return [self.opt_batch] * 3
        return [self.min_batch, self.opt_batch, self.max_batch]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"precision": self.precision, "batch": self.batches,
               "workspace_mb": self.workspace_mb, "hardware_compat": self.hardware_compat,
               "tf32": self.tf32,
               "legacy_int8_calibrator": self.legacy_int8_calibrator is not None}
        if self.dla_core is not None:  # GPU engines keep the keys older manifests have
            out.update(dla_core=self.dla_core, gpu_fallback=self.gpu_fallback)
        return out


def network_flags(trt: ModuleType, strongly_typed: bool) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if version_tuple(trt)[0] < 10 and hasattr(creation, "EXPLICIT_BATCH"):
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if strongly_typed and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def parse_errors(parser: IOnnxParser) -> list[str]:
    """One line per parser error: node index/name/operator where this version reports them."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = []
        for attr, label in (("node", "node"), ("node_name", "name"), ("node_operator", "op")):
            fn = getattr(err, attr, None)
            try:
                value = fn() if fn else None
            except Exception:  # older parsers raise for fields they do not track
                value = None
            if value not in (None, "", -1):
                where.append(f"{label} {value}")
        desc = " ".join(str(err.desc()).split())
        lines.append(f"[{', '.join(where) or 'graph'}] {desc}")
    return lines


def build_plan(onnx_path: Path, plan_path: Path, options: BuildOptions,
               timing_cache: Path | None = None) -> BuildFacts:
    """Parse `onnx_path`, build a serialized engine into `plan_path`; returns build facts
    (profile shapes, input dtype, TensorRT version, seconds, flags used). A legacy calibrator in
    `options` is closed (device buffer and stream freed) when this returns or fails."""
    try:
        return _build_plan(onnx_path, plan_path, options, timing_cache)
    finally:
        close = getattr(options.legacy_int8_calibrator, "close", None)
        if close is not None:
            close()


def _build_plan(onnx_path: Path, plan_path: Path, options: BuildOptions,
                timing_cache: Path | None) -> BuildFacts:
    options.check()
    trt = load_tensorrt()
    major = version_tuple(trt)[0]
    legacy = options.legacy_int8_calibrator is not None
    if legacy and major >= 10:
        raise UsageError("--legacy-int8-calibrator needs TensorRT < 10 (implicit calibration "
                         f"is deprecated in 10 and removed in 11; this is {trt.__version__}); "
                         "use the Q/DQ INT8 ONNX instead")
    creation = trt.NetworkDefinitionCreationFlag
    strongly_typed = not legacy and hasattr(creation, "STRONGLY_TYPED")
    logger = trt.Logger(trt.Logger.WARNING)
    builder: IBuilder = trt.Builder(logger)
    if options.dla_core is not None:  # before minutes of parsing: a board without DLA says so
        dla.check_board(trt, builder, options.dla_core, options.precision)
    network = builder.create_network(network_flags(trt, strongly_typed))
    parser: IOnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parse_errors(parser) or ["no details from the parser"]
        raise BackendError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: "
                           + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    flags_used = _precision_flags(trt, config, options, strongly_typed)
    flags_used += _tf32_flag(trt, config, options)
    if options.legacy_int8_calibrator is not None:
        config.int8_calibrator = options.legacy_int8_calibrator
        # Calibration runs at one fixed shape: the calibrator's batch size.
        _calibration_profile(builder, network, config,
                             options.legacy_int8_calibrator.get_batch_size())
    if options.hardware_compat:
        if not hasattr(trt, "HardwareCompatibilityLevel"):
            raise UsageError(f"--hardware-compat needs TensorRT 8.6 or newer "
                             f"(this is {trt.__version__})")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    placement = None
    if options.dla_core is not None:
        tensor = network.get_input(0)
        dla.check_static(tensor.name, list(tensor.shape), options.dla_core)
        placement = dla.configure(trt, config, network, options.dla_core, options.gpu_fallback)
        if options.gpu_fallback:
            flags_used.append("GPU_FALLBACK")
    profile_shapes = _add_profile(builder, network, config, options)
    cache = _load_timing_cache(config, timing_cache)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise BackendError(f"TensorRT {trt.__version__} failed to build an engine from "
                           f"{onnx_path.name} (see the TensorRT messages above)")
    from edgecrystal.atomic import write_bytes

    plan_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(plan_path, bytes(plan))
    if timing_cache is not None and cache is not None:
        write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "profile": profile_shapes,
            "input_dtype": _dtype_name(network.get_input(0).dtype),
            "strongly_typed": strongly_typed, "builder_flags": flags_used,
            "build_seconds": seconds, "placement": placement}


def _precision_flags(trt: ModuleType, config: IBuilderConfig, options: BuildOptions,
                     strongly_typed: bool) -> list[str]:
    """Builder precision flags for a weakly typed network, where this TensorRT has them."""
    if strongly_typed:
        return []
    wanted = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}.get(options.precision)
    if wanted is None:
        raise UsageError(f"precision must be fp32, fp16 or int8 (got {options.precision})")
    used = []
    for name in wanted:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is not None:
            config.set_flag(flag)
            used.append(name)
    return used


def _tf32_flag(trt: ModuleType, config: IBuilderConfig, options: BuildOptions) -> list[str]:
    """Strict FP32 for an FP32 engine: TensorRT enables TF32 by default, which on Ampere and
    newer rounds FP32 matrix maths to a 10-bit mantissa."""
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is None or options.precision != "fp32" or options.tf32:
        return []
    config.clear_flag(tf32)
    return ["-TF32"]


def _add_profile(builder: IBuilder, network: INetworkDefinition, config: IBuilderConfig,
                 options: BuildOptions) -> dict[str, list[int]]:
    tensor = network.get_input(0)
    rest = list(tensor.shape)[1:]
    if any(d < 0 for d in rest):
        raise BackendError(f"input {tensor.name} has dynamic dimensions besides the batch: "
                           f"{list(tensor.shape)}")
    low, opt, high = options.batches
    shapes = {"min": [low, *rest], "opt": [opt, *rest], "max": [high, *rest]}
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    return shapes


def _calibration_profile(builder: IBuilder, network: INetworkDefinition,
                         config: IBuilderConfig, batch: int) -> None:
    tensor = network.get_input(0)
    shape = [batch, *list(tensor.shape)[1:]]
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, shape, shape, shape)
    config.set_calibration_profile(profile)


def _load_timing_cache(config: IBuilderConfig, path: Path | None) -> ITimingCache | None:
    """Reuse the timing cache beside the engines (a rebuild skips kernel timing it has seen)."""
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _dtype_name(dtype: object) -> str:
    return str(dtype).rsplit(".", 1)[-1].lower()  # DataType.UINT8 -> "uint8"
