"""What edgecrystal uses of TensorRT's builder objects, as Protocols for the type checker.

tensorrt ships no type information and loads at run time only (tensorrt_module.load_tensorrt),
so these describe the members the engine builder, the DLA placement and the legacy calibrator
call (IBuilder, INetworkDefinition, IBuilderConfig, IOnnxParser...), with the signatures of the
binding modules (tests/fakes/tensorrt.py is generated from them). Enum values (BuilderFlag,
DeviceType, MemoryPoolType, DataType) stay `object`: they are only handed back to TensorRT.
Nothing here imports tensorrt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # collections.abc.Buffer from Python 3.12; only the type checker needs it
    from typing_extensions import Buffer


class Dims(Protocol):
    """trt.Dims: a tensor's shape, -1 for a dynamic dimension; iterates like a tuple."""

    def __iter__(self) -> Iterator[int]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> int: ...


class ITensor(Protocol):
    name: str
    shape: Dims
    dtype: object  # trt.DataType


class ILayer(Protocol):
    name: str


class INetworkDefinition(Protocol):
    num_layers: int

    def get_input(self, index: int) -> ITensor: ...
    def get_layer(self, index: int) -> ILayer: ...


class IParserError(Protocol):
    def desc(self) -> str: ...


class IOnnxParser(Protocol):
    num_errors: int

    def parse_from_file(self, model: str) -> bool: ...
    def get_error(self, index: int) -> IParserError: ...


class IOptimizationProfile(Protocol):
    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int],
                  max: Sequence[int]) -> None: ...


class ITimingCache(Protocol):
    def serialize(self) -> Buffer: ...  # trt.IHostMemory


class IInt8Calibrator(Protocol):
    """The implicit INT8 calibrator (TensorRT < 10; calibration.trt_calibrator makes one)."""

    def get_batch_size(self) -> int: ...
    def close(self) -> None: ...  # edgecrystal's: frees the calibrator's device memory


class IBuilderConfig(Protocol):
    int8_calibrator: IInt8Calibrator | None
    hardware_compatibility_level: object  # trt.HardwareCompatibilityLevel
    default_device_type: object  # trt.DeviceType
    DLA_core: int

    def set_flag(self, flag: object) -> None: ...
    def clear_flag(self, flag: object) -> None: ...
    def set_memory_pool_limit(self, pool: object, pool_size: int) -> None: ...
    def add_optimization_profile(self, profile: IOptimizationProfile) -> int: ...
    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool: ...
    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache: ...
    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool: ...
    def get_timing_cache(self) -> ITimingCache: ...
    def can_run_on_DLA(self, layer: ILayer) -> bool: ...


class IBuilder(Protocol):
    num_DLA_cores: int

    def create_network(self, flags: int = 0) -> INetworkDefinition: ...
    def create_builder_config(self) -> IBuilderConfig: ...
    def create_optimization_profile(self) -> IOptimizationProfile: ...
    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> Buffer | None: ...
