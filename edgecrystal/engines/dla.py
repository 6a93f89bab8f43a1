"""Building an engine for a DLA core (Orin NX / AGX Orin's deep learning accelerators).

What DLA asks of a build, and where this module makes sure of it:
- a TensorRT line with DLA on Jetson (engines.versions.dla_problem) and a board with DLA cores
  (Builder.num_DLA_cores: 0 on Orin Nano, Thor and desktop GPUs), checked before parsing;
- FP16 or INT8 only: an FP32 engine is refused (DLA has no FP32 math);
- static shapes: the profile is min = opt = max (trt_build forces it; the runner pads a short
  last batch); a dynamic image size is refused;
- layers DLA cannot run go to the GPU only with BuilderFlag.GPU_FALLBACK: without it the build
  is refused up front, naming the layers (IBuilderConfig.can_run_on_DLA), rather than failing
  deep inside the builder.
Every refusal is one UsageError line naming the reason and the fix. The APIs used here
(DeviceType, default_device_type, DLA_core, can_run_on_DLA, num_DLA_cores, GPU_FALLBACK) exist
in every binding the project supports (tests/binding_api: 8.6, 10.3, 10.13, 11.4).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

from edgecrystal.errors import UsageError

from .versions import dla_problem

if TYPE_CHECKING:
    from .trt_types import IBuilder, IBuilderConfig, INetworkDefinition

NAMED_LAYERS = 5  # layers named in a refusal; the manifest keeps up to MANIFEST_LAYERS
MANIFEST_LAYERS = 50


class LayerCount(TypedDict):
    dla: int
    gpu: int


class Placement(TypedDict):
    """Where a DLA engine's layers run (engine.json's entry keeps it)."""

    device: str  # "dla0"
    gpu_fallback: bool
    layers: LayerCount
    gpu_layers: list[str]  # the first MANIFEST_LAYERS layers that run on the GPU


def device_name(dla_core: int | None) -> str:
    """'gpu' or 'dla0': the device part of an engine's key and of the ready line."""
    return "gpu" if dla_core is None else f"dla{dla_core}"


def check_board(trt: ModuleType, builder: IBuilder, dla_core: int, precision: str) -> None:
    """Refuse, in one line, a DLA build this TensorRT or this board cannot make."""
    flag = f"--dla-core {dla_core}"
    problem = dla_problem(str(trt.__version__))
    if problem:
        raise UsageError(f"{flag}: {problem}")
    cores = int(builder.num_DLA_cores)
    if cores == 0:
        raise UsageError(f"{flag}: this board has no DLA core (Orin Nano, Thor and desktop GPUs "
                         "have none; Orin NX and AGX Orin have two); drop --dla-core / dla_core "
                         "to build for the GPU")
    if not 0 <= dla_core < cores:
        raise UsageError(f"{flag}: this board has {cores} DLA core(s), numbered 0 to "
                         f"{cores - 1}; choose one of them")
    if precision == "fp32":
        raise UsageError(f"{flag}: DLA runs FP16 and INT8 only; build with --precision fp16 or "
                         "int8 (or drop --dla-core for an FP32 engine on the GPU)")


def check_static(name: str, shape: list[int], dla_core: int) -> None:
    if any(d < 0 for d in shape[1:]):
        raise UsageError(f"--dla-core {dla_core}: DLA needs static shapes, input {name} is "
                         f"{shape}; export the model with a fixed image size")


def configure(trt: ModuleType, config: IBuilderConfig, network: INetworkDefinition,
              dla_core: int, gpu_fallback: bool) -> Placement:
    """Point the builder at DLA core `dla_core`; returns where the network's layers will run.
    Refuses a network with layers DLA cannot run unless `gpu_fallback`."""
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = dla_core
    if gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_gpu = [str(layer.name) for layer in layers if not config.can_run_on_DLA(layer)]
    if on_gpu and not gpu_fallback:
        named = ", ".join(on_gpu[:NAMED_LAYERS]) + (", ..." if len(on_gpu) > NAMED_LAYERS
                                                     else "")
        raise UsageError(f"--dla-core {dla_core}: {len(on_gpu)} of {len(layers)} layers cannot "
                         f"run on DLA ({named}); add --gpu-fallback to run them on the GPU")
    return {"device": device_name(dla_core), "gpu_fallback": gpu_fallback,
            "layers": {"dla": len(layers) - len(on_gpu), "gpu": len(on_gpu)},
            "gpu_layers": on_gpu[:MANIFEST_LAYERS]}


def describe_placement(placement: dict[str, Any] | None) -> str:
    """'dla0 (28 layers on DLA, 2 on the GPU)' for the ready line and bench; 'gpu' without one."""
    if not placement or placement.get("device", "gpu") == "gpu":
        return "gpu"
    layers = placement.get("layers")
    if not layers:
        return str(placement["device"])
    return (f"{placement['device']} ({layers.get('dla', '?')} layers on DLA, "
            f"{layers.get('gpu', '?')} on the GPU)")


def count_cores() -> int | str:
    """DLA cores this board offers through TensorRT (Builder.num_DLA_cores), or why it cannot
    say (no TensorRT, no GPU)."""
    from edgecrystal.errors import BackendError

    from .tensorrt_module import load_tensorrt

    try:
        trt = load_tensorrt()
    except BackendError as exc:
        return str(exc)
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
        return int(builder.num_DLA_cores)
    except Exception as exc:  # a builder needs a working GPU; TensorRT's errors vary by version
        return f"TensorRT cannot open a builder here ({type(exc).__name__}: {exc})"
