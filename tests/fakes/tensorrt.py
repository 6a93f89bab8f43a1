"""A fake `tensorrt` module for one real version, built from tests/binding_api/tensorrt-<v>.json.

The API surface is the real one (surface.py: anything the version lacks raises AttributeError,
wrong arguments TypeError, unmodelled calls NotImplementedError). The behaviour is TensorRT's
control flow, minimally:
- OnnxParser reads the ONNX file with `onnx` and fills the network (inputs, outputs with -1 for
  dynamic dimensions, whether it holds Q/DQ); unknown operators, unreadable files and (8.6)
  INT64 tensors are parser errors with node index, name and operator where the version has them.
- Builder.build_serialized_network checks what the real builder rejects (a dynamic input without
  a profile, precision flags on a strongly typed network, Q/DQ in a weakly typed network without
  INT8, INT8 without Q/DQ or calibrator, implicit calibration without a calibration profile,
  AMPERE_PLUS on a GPU older than sm80) and then writes a plan: a header (version, GPU, flags,
  TF32, hardware compatibility, I/O tensors, profiles) followed by the ONNX bytes. It runs the
  legacy calibrator through its get_batch / cache calls and records kernel timing in the timing
  cache (FakeGpu.stats counts timed and reused entries).
- DLA: Builder.num_DLA_cores is the fake GPU's `dla_cores` where the version has DLA on Jetson
  (8.x, 10.0-10.7, 11.4.1+ within 11.4), else 0; can_run_on_DLA is False for the operators in
  DLA_UNSUPPORTED (a fake's choice: Cast, the uint8 -> float step every edgecrystal model starts
  with); the builder refuses a DLA build on a missing core, with a dynamic profile, or with
  layers DLA cannot run and no GPU_FALLBACK; Runtime.DLA_core picks the core a DLA plan runs on.
- ICudaEngine.create_engine_inspector answers the engine's layer names (LAYER_NAMES_ONLY JSON).
- Runtime.deserialize_cuda_engine refuses other versions, other GPUs (unless AMPERE_PLUS on
  sm80+) and corrupt bytes by logging and answering None; the execution context reads inputs
  from the fake GPU's memory, runs the ONNX with ONNX Runtime on the CPU and writes the outputs.
IHostMemory is a bytes subclass: the real one exposes the buffer protocol, which a pure-Python
class cannot on Python 3.11.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from .cuda import FakeGpu
from .surface import checked, create, load_fixture, make_class, make_enum

MAGIC = b"FAKE-TRT-PLAN\n"
TIMING_MAGIC = b"FAKE-TRT-TIMING\n"
SUPPORTED_OPS = {"Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Softmax", "Conv", "MatMul",
                 "Gemm", "Cast", "Identity", "Reshape", "Flatten", "Transpose", "Concat",
                 "GlobalAveragePool", "MaxPool", "AveragePool", "BatchNormalization", "Clip",
                 "QuantizeLinear", "DequantizeLinear", "ReduceMean", "Resize"}
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8, "INT8": np.int8,
         "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}
DLA_UNSUPPORTED = {"Cast"}
VERSIONS = {"8.6": "tensorrt-8.6", "10.3": "tensorrt-10.3", "10.13": "tensorrt-10.13",
            "11.4": "tensorrt-11.4"}


def read_plan(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, ONNX bytes) of a fake plan; ValueError for anything else."""
    if not blob.startswith(MAGIC):
        raise ValueError("not a plan")
    rest = blob[len(MAGIC):]
    size = int.from_bytes(rest[:4], "little")
    return json.loads(rest[4 : 4 + size]), rest[4 + size :]


def _plan(header: dict[str, Any], onnx_bytes: bytes) -> bytes:
    text = json.dumps(header).encode()
    return MAGIC + len(text).to_bytes(4, "little") + text + onnx_bytes


class World:
    """What the behaviour classes share: the module, its version and the fake GPU."""

    def __init__(self, module: types.ModuleType, version: str, gpu: FakeGpu) -> None:
        self.trt, self.version, self.gpu = module, version, gpu
        self.major = int(version.split(".")[0])
        parts = [int(p) for p in version.split(".")[:3]]
        # NVIDIA: DLA up to 10.7, none in 11.0-11.3 and 11.4.0 (Windows on ARM only), back in
        # 11.4.1 on AGX Orin.
        self.has_dla = parts[:2] <= [10, 7] or (parts[:2] == [11, 4] and parts[2] >= 1)

    def dla_cores(self) -> int:
        return self.gpu.dla_cores if self.has_dla else 0

    def log(self, logger: Any, severity: str, message: str) -> None:
        self.gpu.log.append(f"{severity}: {message}")
        if logger is not None:
            logger.log(getattr(self.trt.ILogger.Severity, severity), message)

    def dtype(self, name: str) -> Any:
        return getattr(self.trt.DataType, name)

    def dims(self, shape: Any) -> Any:
        return self.trt.Dims(list(shape))

    def blob(self, data: bytes) -> Any:
        """An IHostMemory as the library makes one (Python code cannot construct it)."""
        return bytes.__new__(self.trt.IHostMemory, data)


def behaviours(world: World) -> dict[str, type]:
    trt = world.trt

    class Logger:
        def __init__(self, min_severity: Any = None) -> None:
            object.__setattr__(self, "_fake_prop_min_severity", min_severity)

        def log(self, severity: Any, msg: str) -> None:
            return None

    class Dims:
        def __init__(self, shape: Any = ()) -> None:
            object.__setattr__(self, "_fake_values", [int(d) for d in shape])

        def __len__(self) -> int:
            return len(self._fake_values)

        def __getitem__(self, index: int) -> int:
            return self._fake_values[index]

        def __setitem__(self, index: int, value: int) -> None:
            self._fake_values[index] = int(value)

    class ITensor:
        name = property(lambda self: self._fake_name)
        shape = property(lambda self: world.dims(self._fake_shape))
        dtype = property(lambda self: world.dtype(self._fake_dtype))

    class ILayer:
        name = property(lambda self: self._fake_name)

    class INetworkDefinition:
        num_inputs = property(lambda self: len(self._fake_inputs))
        num_outputs = property(lambda self: len(self._fake_outputs))
        num_layers = property(lambda self: len(self._fake_nodes))

        def get_layer(self, index: int) -> Any:
            if not 0 <= index < len(self._fake_nodes):
                return None
            return create(trt.ILayer, name=self._fake_names[index], op=self._fake_nodes[index])

        def get_input(self, index: int) -> Any:
            return self._fake_inputs[index] if index < len(self._fake_inputs) else None

        def get_output(self, index: int) -> Any:
            return self._fake_outputs[index] if index < len(self._fake_outputs) else None

    class ParserError:
        def desc(self) -> str:
            return self._fake_desc

        def node(self) -> int:
            return self._fake_node

        def node_name(self) -> str:
            return self._fake_node_name

        def node_operator(self) -> str:
            return self._fake_op

        def code(self) -> Any:
            return 0

    class OnnxParser:
        def __init__(self, network: Any, logger: Any) -> None:
            object.__setattr__(self, "_fake_network", network)
            object.__setattr__(self, "_fake_logger", logger)
            object.__setattr__(self, "_fake_errors", [])

        num_errors = property(lambda self: len(self._fake_errors))

        def get_error(self, index: int) -> Any:
            return self._fake_errors[index]

        def clear_errors(self) -> None:
            self._fake_errors.clear()

        def _fake_error(self, desc: str, node: int = -1, name: str = "", op: str = "") -> bool:
            self._fake_errors.append(create(trt.ParserError, desc=desc, node=node,
                                            node_name=name, op=op))
            world.log(self._fake_logger, "ERROR", desc)
            return False

        def parse_from_file(self, model: str) -> bool:
            import onnx

            try:
                raw = Path(model).read_bytes()
                proto = onnx.load_from_string(raw)
            except Exception as exc:  # what onnx raises for a damaged file varies
                return self._fake_error(f"Failed to parse ONNX model from file: {model}: "
                                        f"{type(exc).__name__}")
            network = self._fake_network
            if not network._fake_explicit_batch:
                return self._fake_error("Network must have the EXPLICIT_BATCH flag: the ONNX "
                                        "parser supports explicit batch networks only")
            graph = proto.graph
            for index, node in enumerate(graph.node):
                if node.op_type not in SUPPORTED_OPS:
                    return self._fake_error(f"No importer registered for op: {node.op_type}",
                                            index, node.name, node.op_type)
            initializers = {i.name for i in graph.initializer}

            def tensor(value: Any, kind: str) -> Any:
                shape = [d.dim_value if d.HasField("dim_value") else -1
                         for d in value.type.tensor_type.shape.dim]
                dtype = ONNX_TO_TRT.get(value.type.tensor_type.elem_type, "UNKNOWN")
                if dtype == "INT64" and world.major < 10:
                    dtype = "INT32"  # 8.6 casts INT64 I/O down, with a warning
                return create(trt.ITensor, name=value.name, shape=shape, dtype=dtype, kind=kind)

            network._fake_inputs.extend(tensor(v, "input") for v in graph.input
                                        if v.name not in initializers)
            network._fake_outputs.extend(tensor(v, "output") for v in graph.output)
            network._fake_nodes.extend(node.op_type for node in graph.node)
            network._fake_names.extend(node.name or f"{node.op_type}_{index}"
                                       for index, node in enumerate(graph.node))
            object.__setattr__(network, "_fake_onnx", raw)
            return True

    class IOptimizationProfile:
        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
            self._fake_shapes[input] = [list(min), list(opt), list(max)]

        def get_shape(self, input: str) -> list[Any]:
            return [world.dims(s) for s in self._fake_shapes.get(input, [[], [], []])]

    class ITimingCache:
        def serialize(self) -> Any:
            return world.blob(TIMING_MAGIC + json.dumps(sorted(self._fake_entries)).encode())

        def combine(self, input_cache: Any, ignore_mismatch: bool) -> bool:
            self._fake_entries.update(input_cache._fake_entries)
            return True

        def reset(self) -> None:
            self._fake_entries.clear()

    class IBuilderConfig:
        def set_flag(self, flag: Any) -> None:
            if type(flag) is not trt.BuilderFlag:
                raise TypeError(f"set_flag(): incompatible function arguments ({flag!r})")
            self._fake_flags.add(flag.name)

        def clear_flag(self, flag: Any) -> None:
            if type(flag) is not trt.BuilderFlag:
                raise TypeError(f"clear_flag(): incompatible function arguments ({flag!r})")
            self._fake_flags.discard(flag.name)

        def get_flag(self, flag: Any) -> bool:
            return flag.name in self._fake_flags

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            if type(pool) is not trt.MemoryPoolType:
                raise TypeError("set_memory_pool_limit(): incompatible function arguments")
            self._fake_pools[pool.name] = int(pool_size)

        def get_memory_pool_limit(self, pool: Any) -> int:
            return self._fake_pools.get(pool.name, 0)

        def add_optimization_profile(self, profile: Any) -> int:
            self._fake_profiles.append(profile)
            return len(self._fake_profiles) - 1

        def set_calibration_profile(self, profile: Any) -> bool:
            object.__setattr__(self, "_fake_calibration_profile", profile)
            return True

        def get_calibration_profile(self) -> Any:
            return self._fake_calibration_profile

        num_optimization_profiles = property(lambda self: len(self._fake_profiles))

        def create_timing_cache(self, serialized_timing_cache: bytes) -> Any:
            blob = bytes(serialized_timing_cache)
            entries: set[str] = set()
            if blob:
                if not blob.startswith(TIMING_MAGIC):
                    world.log(None, "ERROR", "timing cache: invalid serialized data")
                    return None
                entries = set(json.loads(blob[len(TIMING_MAGIC):]))
            return create(trt.ITimingCache, entries=entries)

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            object.__setattr__(self, "_fake_timing_cache", cache)
            return True

        def get_timing_cache(self) -> Any:
            return self._fake_timing_cache

        def _fake_set_compat(self, value: Any) -> None:
            if type(value) is not trt.HardwareCompatibilityLevel:
                raise TypeError("hardware_compatibility_level: incompatible type")
            object.__setattr__(self, "_fake_compat", value)

        hardware_compatibility_level = property(lambda self: self._fake_compat, _fake_set_compat)

        def _fake_set_calibrator(self, value: Any) -> None:
            if value is not None and not isinstance(value, trt.IInt8Calibrator):
                raise TypeError("int8_calibrator: incompatible type")
            object.__setattr__(self, "_fake_calibrator", value)

        int8_calibrator = property(lambda self: self._fake_calibrator, _fake_set_calibrator)

        def _fake_set_device(self, value: Any) -> None:
            if type(value) is not trt.DeviceType:
                raise TypeError("default_device_type: incompatible type")
            object.__setattr__(self, "_fake_device", value)

        default_device_type = property(lambda self: self._fake_device, _fake_set_device)

        def _fake_set_dla_core(self, value: Any) -> None:
            object.__setattr__(self, "_fake_dla_core", int(value))

        DLA_core = property(lambda self: self._fake_dla_core, _fake_set_dla_core)

        def can_run_on_DLA(self, layer: Any) -> bool:
            return layer._fake_op not in DLA_UNSUPPORTED

    class Builder:
        def __init__(self, logger: Any) -> None:
            object.__setattr__(self, "_fake_logger", logger)

        logger = property(lambda self: self._fake_logger)
        num_DLA_cores = property(lambda self: world.dla_cores())

        def create_network(self, flags: int = 0) -> Any:
            known = sum(1 << int(m) for m in trt.NetworkDefinitionCreationFlag.__members__
                        .values())
            if int(flags) & ~known:
                world.log(self._fake_logger, "ERROR", f"invalid network creation flags {flags}")
                return None
            typed = "STRONGLY_TYPED" in trt.NetworkDefinitionCreationFlag.__members__ and bool(
                int(flags) >> int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) & 1)
            explicit = world.major >= 10 or bool(int(flags) & 1)
            return create(trt.INetworkDefinition, inputs=[], outputs=[], nodes=[], names=[],
                          strongly_typed=typed or world.major >= 11, explicit_batch=explicit,
                          onnx=b"")

        def create_builder_config(self) -> Any:
            default = {"TF32"} if "TF32" in trt.BuilderFlag.__members__ else set()
            return create(trt.IBuilderConfig, flags=set(default), pools={}, profiles=[],
                          calibration_profile=None, timing_cache=None, calibrator=None,
                          compat=trt.HardwareCompatibilityLevel.NONE,
                          device=trt.DeviceType.GPU, dla_core=-1)

        def create_optimization_profile(self) -> Any:
            return create(trt.IOptimizationProfile, shapes={})

        def build_serialized_network(self, network: Any, config: Any) -> Any:
            problem = _fake_problem(network, config)
            if problem:
                world.log(self._fake_logger, "ERROR", problem)
                return None
            nodes = network._fake_nodes
            if "INT8" in config._fake_flags and config._fake_calibrator is not None:
                problem = _fake_calibrate(network, config)
                if problem:
                    world.log(self._fake_logger, "ERROR", problem)
                    return None
            _fake_time_kernels(network, config)
            profiles = [{name: shapes for name, shapes in p._fake_shapes.items()}
                        for p in config._fake_profiles]
            on_dla = config._fake_device.name == "DLA"
            gpu_layers = [n for n, op in zip(network._fake_names, nodes, strict=True)
                          if on_dla and op in DLA_UNSUPPORTED]
            header = {"tensorrt": world.version, "sm": list(world.gpu.sm),
                      "hardware_compat": config._fake_compat.name,
                      "flags": sorted(config._fake_flags), "tf32": "TF32" in config._fake_flags,
                      "strongly_typed": network._fake_strongly_typed, "layers": len(nodes),
                      "io": [{"name": t._fake_name, "mode": mode, "dtype": t._fake_dtype,
                              "shape": t._fake_shape}
                             for mode, group in (("INPUT", network._fake_inputs),
                                                 ("OUTPUT", network._fake_outputs))
                             for t in group],
                      "profiles": profiles, "device": config._fake_device.name,
                      "dla_core": config._fake_dla_core if on_dla else -1,
                      "names": list(network._fake_names), "gpu_layers": gpu_layers}
            return world.blob(_plan(header, network._fake_onnx))

    def _fake_problem(network: Any, config: Any) -> str | None:
        flags = config._fake_flags
        if not network._fake_inputs:
            return "network has no inputs (was the ONNX parsed?)"
        if network._fake_strongly_typed and flags & {"FP16", "INT8", "BF16", "FP8"}:
            return ("precision flags (FP16/INT8) cannot be used with a strongly typed network; "
                    "the network states its types")
        has_qdq = "QuantizeLinear" in network._fake_nodes
        if has_qdq and not network._fake_strongly_typed and "INT8" not in flags:
            return "network has Q/DQ layers but INT8 is not enabled in the builder config"
        if ("INT8" in flags and not has_qdq and config._fake_calibrator is None):
            return "INT8 requested without Q/DQ layers, dynamic ranges or a calibrator"
        for tensor in network._fake_inputs:
            if -1 in tensor._fake_shape and not config._fake_profiles:
                return f"input {tensor._fake_name} has dynamic shape but no optimization profile"
            for profile in config._fake_profiles:
                shapes = profile._fake_shapes.get(tensor._fake_name)
                if -1 in tensor._fake_shape and shapes is None:
                    return f"profile has no shape for dynamic input {tensor._fake_name}"
                if shapes and not _fits(tensor._fake_shape, shapes):
                    return f"profile shapes {shapes} do not fit {tensor._fake_shape}"
        compat = config._fake_compat
        if compat.name == "AMPERE_PLUS" and world.gpu.sm < (8, 0):
            return "hardware compatibility AMPERE_PLUS needs an sm80+ GPU to build on"
        if config._fake_device.name == "DLA":
            return _fake_dla_problem(network, config)
        return None

    def _fake_dla_problem(network: Any, config: Any) -> str | None:
        core = config._fake_dla_core
        if not 0 <= core < world.dla_cores():
            return f"Cannot create DLA engine, {core} not available"
        for profile in config._fake_profiles:
            for name, (low, opt, high) in profile._fake_shapes.items():
                if not low == opt == high:
                    return f"DLA does not support dynamic shapes: {name} has profile " \
                           f"{low}..{high}"
        fallback = "GPU_FALLBACK" in config._fake_flags
        for name, op in zip(network._fake_names, network._fake_nodes, strict=True):
            if op in DLA_UNSUPPORTED and not fallback:
                return f"{name}: layer cannot run on DLA and GPU fallback is not enabled"
        return None

    def _fits(dims: list[int], shapes: list[list[int]]) -> bool:
        low, opt, high = shapes
        if not len(low) == len(opt) == len(high) == len(dims):
            return False
        for d, a, b, c in zip(dims, low, opt, high, strict=True):
            if not 1 <= a <= b <= c or (d != -1 and not a == b == c == d):
                return False
        return True

    def _fake_calibrate(network: Any, config: Any) -> str | None:
        calibrator = config._fake_calibrator
        tensor = network._fake_inputs[0]
        if -1 in tensor._fake_shape and config._fake_calibration_profile is None:
            return "calibration profile must be set for a network with dynamic shapes"
        cache = calibrator.read_calibration_cache()
        if cache:
            return None
        batch = int(calibrator.get_batch_size())
        per_item = int(np.prod(tensor._fake_shape[1:])) * np.dtype(
            NUMPY[tensor._fake_dtype]).itemsize
        names = [t._fake_name for t in network._fake_inputs]
        while True:
            pointers = calibrator.get_batch(names)
            if pointers is None:
                break
            if len(pointers) != len(names):
                return f"calibrator gave {len(pointers)} buffers for {len(names)} inputs"
            try:
                world.gpu.region(int(pointers[0]), batch * per_item)
            except ValueError as exc:
                return f"calibration batch: {exc}"
            world.gpu.stats["calibration_batches"] += 1
        table = "".join(f"{t._fake_name}: 3c010a14\n" for t in network._fake_inputs)
        calibrator.write_calibration_cache(
            world.blob(f"TRT-{world.version}-EntropyCalibration2\n{table}".encode()))
        return None

    def _fake_time_kernels(network: Any, config: Any) -> None:
        cache = config._fake_timing_cache
        precision = "+".join(sorted(config._fake_flags)) or "fp32"
        for index, op in enumerate(network._fake_nodes):
            key = f"sm{world.gpu.major}{world.gpu.minor}/{op}#{index}/{precision}"
            if cache is not None and key in cache._fake_entries:
                world.gpu.stats["reused"] += 1
                continue
            world.gpu.stats["timed"] += 1
            if cache is not None:
                cache._fake_entries.add(key)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            object.__setattr__(self, "_fake_logger", logger)
            object.__setattr__(self, "_fake_dla_core", -1)

        num_DLA_cores = property(lambda self: world.dla_cores())

        def _fake_set_dla_core(self, value: Any) -> None:
            object.__setattr__(self, "_fake_dla_core", int(value))

        DLA_core = property(lambda self: self._fake_dla_core, _fake_set_dla_core)

        def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
            try:
                header, onnx_bytes = read_plan(bytes(serialized_engine))
            except ValueError:
                world.log(self._fake_logger, "ERROR", "1: [stdArchiveReader.cpp::...] Error "
                          "Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC"
                          "_TAG failed.Magic tag does not match)")
                return None
            if header["tensorrt"] != world.version:
                world.log(self._fake_logger, "ERROR", "The engine plan file is not compatible "
                          f"with this version of TensorRT, expecting library version "
                          f"{world.version} got {header['tensorrt']}")
                return None
            built = tuple(header["sm"])
            ampere_plus = header["hardware_compat"] == "AMPERE_PLUS"
            if (ampere_plus and world.gpu.sm < (8, 0)) or (not ampere_plus
                                                            and built != world.gpu.sm):
                world.log(self._fake_logger, "ERROR", "The engine plan file is generated on "
                          "an incompatible device")
                return None
            core = -1
            if header.get("device") == "DLA":
                core = self._fake_dla_core if self._fake_dla_core >= 0 else header["dla_core"]
                if not 0 <= core < world.dla_cores():
                    world.log(self._fake_logger, "ERROR", f"DLA core {core} is not available")
                    return None
            return create(trt.ICudaEngine, header=header, onnx=onnx_bytes, dla_core=core)

    class ICudaEngine:
        num_io_tensors = property(lambda self: len(self._fake_header["io"]))
        num_optimization_profiles = property(lambda self: len(self._fake_header["profiles"]))

        def _fake_io(self, name: str) -> dict[str, Any]:
            for tensor in self._fake_header["io"]:
                if tensor["name"] == name:
                    return tensor
            raise KeyError(name)

        def get_tensor_name(self, index: int) -> str:
            return self._fake_header["io"][index]["name"]

        def get_tensor_mode(self, name: str) -> Any:
            try:
                return getattr(trt.TensorIOMode, self._fake_io(name)["mode"])
            except KeyError:
                return trt.TensorIOMode.NONE

        def get_tensor_shape(self, name: str) -> Any:
            return world.dims(self._fake_io(name)["shape"])

        def get_tensor_dtype(self, name: str) -> Any:
            return world.dtype(self._fake_io(name)["dtype"])

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
            shapes = self._fake_header["profiles"][profile_index][name]
            return [world.dims(s) for s in shapes]

        def create_engine_inspector(self) -> Any:
            return create(trt.EngineInspector, engine=self)

        def create_execution_context(self, *args: Any, **kwargs: Any) -> Any:
            return create(trt.IExecutionContext, engine=self, shapes={}, addresses={},
                          session=None)

    class EngineInspector:
        def get_engine_information(self, format: Any) -> str:
            header = self._fake_engine._fake_header
            names = header.get("names", [])
            if format.name == "ONELINE":
                return "\n".join(names)
            return json.dumps({"Layers": names, "Bindings": [t["name"] for t in header["io"]]})

    class IExecutionContext:
        engine = property(lambda self: self._fake_engine)

        def set_input_shape(self, name: str, shape: Any) -> bool:
            engine = self._fake_engine
            shape = [int(d) for d in shape]
            shapes = engine._fake_header["profiles"][0].get(name)
            if shapes is None or len(shape) != len(shapes[0]) or any(
                    not a <= d <= c for d, a, c in zip(shape, shapes[0], shapes[2], strict=True)):
                world.log(None, "ERROR", f"set_input_shape {name} {shape} outside the profile")
                return False
            self._fake_shapes[name] = shape
            return True

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self._fake_addresses[name] = int(memory)
            return True

        def get_tensor_shape(self, name: str) -> Any:
            io = self._fake_engine._fake_io(name)
            if io["mode"] == "INPUT":
                return world.dims(self._fake_shapes.get(name, io["shape"]))
            batch = next(iter(self._fake_shapes.values()), [1])[0]
            return world.dims([batch if d == -1 else d for d in io["shape"]])

        def execute_async_v3(self, stream_handle: int) -> bool:
            import onnxruntime as ort

            engine = self._fake_engine
            if int(stream_handle) not in world.gpu.streams:
                world.log(None, "ERROR", f"execute_async_v3: unknown stream {stream_handle}")
                return False
            feed = {}
            for io in engine._fake_header["io"]:
                if io["name"] not in self._fake_addresses:
                    world.log(None, "ERROR", f"tensor {io['name']} has no address")
                    return False
                if io["mode"] == "INPUT":
                    if io["name"] not in self._fake_shapes:
                        world.log(None, "ERROR", f"input {io['name']} has no shape")
                        return False
                    shape = self._fake_shapes[io["name"]]
                    dtype = np.dtype(NUMPY[io["dtype"]])
                    nbytes = int(np.prod(shape)) * dtype.itemsize
                    raw = world.gpu.region(self._fake_addresses[io["name"]], nbytes)
                    feed[io["name"]] = np.frombuffer(bytes(raw), dtype).reshape(shape)
            if self._fake_session is None:
                object.__setattr__(self, "_fake_session", ort.InferenceSession(
                    engine._fake_onnx, providers=["CPUExecutionProvider"]))
            outputs = self._fake_session.run(None, feed)
            if engine._fake_dla_core >= 0:
                key = f"dla{engine._fake_dla_core}_runs"
                world.gpu.stats[key] = world.gpu.stats.get(key, 0) + 1
            names = [io["name"] for io in engine._fake_header["io"] if io["mode"] == "OUTPUT"]
            for name, value in zip(names, outputs, strict=True):
                data = np.ascontiguousarray(value, NUMPY[engine._fake_io(name)["dtype"]])
                region = world.gpu.region(self._fake_addresses[name], data.nbytes)
                region[:] = data.tobytes()
            return True

    return {cls.__name__: cls for cls in (
        Logger, Dims, ITensor, ILayer, INetworkDefinition, ParserError, OnnxParser,
        IOptimizationProfile, ITimingCache, IBuilderConfig, Builder, Runtime, ICudaEngine,
        EngineInspector, IExecutionContext)}


def _nptype(world: World) -> Any:
    def nptype(trt_type: Any) -> Any:
        name = trt_type.name
        if name not in NUMPY or (name == "INT64" and world.major < 10):
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return NUMPY[name]

    return nptype


def build_module(version: str, gpu: FakeGpu) -> types.ModuleType:
    """The fake tensorrt of `version` ("8.6", "10.3", "10.13", "11.4") over `gpu`."""
    data = load_fixture(VERSIONS[version])
    label = f"tensorrt {data['version']}"
    module = types.ModuleType("tensorrt")
    module.__version__ = data["version"]  # type: ignore[attr-defined]
    world = World(module, data["version"], gpu)
    enums = {path: make_enum(path, members) for path, members in data["enums"].items()}
    behaviour = behaviours(world)
    classes: dict[str, type] = {}

    def build(path: str) -> type:
        if path in enums:
            return enums[path]
        if path in classes:
            return classes[path]
        record = data["classes"][path]
        bases = tuple(build(b) for b in record["bases"] if b in data["classes"])
        if path == "IHostMemory":
            bases = (*bases, bytes)
        cls = make_class(path, record, bases, behaviour.get(path), label)
        if path == "IHostMemory":
            cls.nbytes = property(lambda self: len(self))  # type: ignore[attr-defined]
        classes[path] = cls
        for name, child in record["nested"].items():
            setattr(cls, name, build(child))
        return cls

    for path in data["classes"]:
        build(path)
    for path, record in data["classes"].items():
        for name, (enum_path, member) in record["values"].items():
            setattr(classes[path], name, getattr(enums[enum_path], member))
    for path, cls in {**enums, **classes}.items():
        if "." not in path:
            setattr(module, path, cls)
    functions = {"nptype": _nptype(world)}
    for name, overloads in data["functions"].items():
        setattr(module, name, checked("tensorrt", name, overloads, functions.get(name), label,
                                      False))
    for name, (enum_path, member) in data["values"].items():
        setattr(module, name, getattr(enums[enum_path], member))
    return module


def install_tensorrt(monkeypatch: Any, version: str, gpu: FakeGpu) -> types.ModuleType:
    module = build_module(version, gpu)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module
