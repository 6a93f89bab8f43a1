"""ONNX Runtime runner: the embedded default that runs everywhere (CPU), and CUDA or the
TensorRT execution provider where onnxruntime-gpu is installed and they are asked for."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BackendError, one_line
from .base import Runner, TensorInfo

if TYPE_CHECKING:  # onnxruntime loads inside the functions that need it
    import onnxruntime as ort

# Short names accepted on the command line and in the daemon config.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(names: list[str] | tuple[str, ...] | None) -> list[str]:
    """Short or full provider names -> full names, checked against what this onnxruntime has.
    The CPU provider is always appended last, as the fallback for unsupported nodes."""
    have = available_providers()
    wanted = [PROVIDERS.get(n.lower(), n) for n in (names or ["cpu"])]
    missing = [w for w in wanted if w not in have]
    if missing:
        raise BackendError(
            f"onnxruntime here has no {', '.join(missing)} (it has {', '.join(have)}); "
            "install onnxruntime-gpu for CUDA/TensorRT providers or use --providers cpu"
        )
    if "CPUExecutionProvider" not in wanted:
        wanted.append("CPUExecutionProvider")
    return wanted


def session_options(threads: int = 0) -> ort.SessionOptions:
    """The SessionOptions every runtime session gets (`edgecrystal profile` profiles with the
    same ones, so what it measures is what the pipeline runs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # 0: one per physical core this process may use (on a shared imager PC fewer is kinder).
    # Always an explicit count: left at 0, onnxruntime picks the same number but pins its
    # worker threads to cores, and the calling thread, woken on a pinned worker's core after
    # the result file's fsync, then shared that core with it until the scheduler moved it:
    # the lite INT8 finder took 27-32 ms after each result write instead of 15 (2 cores).
    opts.intra_op_num_threads = int(threads) if threads > 0 else physical_cores()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # warnings about unused initializers are not the user's
    # The intra-op threads busy-wait between the operators of one run (a model of ~100 small
    # operators otherwise pays a wake-up per operator: the lite INT8 classifier took 9.8 ms
    # with sleeping threads, 7.8 with spinning ones), and stop spinning as soon as the run
    # returns: decoding, cropping and writing run between the two models on the same few cores,
    # and threads left spinning took those cores from them (crop 22 -> 50 ms on 2 cores), and
    # from the other model's threads (a finder + classifier loop 27.2 ms with sleeping threads,
    # 35-41 with threads spinning between runs, 25.6 with spinning stopped at each run's end).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (its affinity mask: systemd's
    CPUAffinity=, taskset, a container's cpuset): hyperthread siblings count once."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not allowed:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as package, \
                    open(f"{topology}/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # no topology (some containers): count logical CPUs
    return max(1, len(cores))


class OrtSessionRunner(Runner):
    """What every runner over an onnxruntime InferenceSession shares: the session's tensors
    and one run call (OnnxRuntimeRunner on the CPU, ort_tensorrt.OrtTensorRTRunner)."""

    session: ort.InferenceSession

    def _adopt(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.inputs = [_info(i) for i in session.get_inputs()]
        self.outputs = [_info(o) for o in session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, values, strict=True))


class OnnxRuntimeRunner(OrtSessionRunner):
    """Checks its providers when made; opens the InferenceSession when activated (first use)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 0,
                 providers: list[str] | tuple[str, ...] | None = None) -> None:
        super().__init__(str(path))
        self.providers = resolve_providers(providers)
        self.threads = threads

    def _activate_impl(self) -> None:
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(self.path, sess_options=session_options(self.threads),
                                           providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {self.path}: "
                               f"{one_line(exc)}") from None
        self._adopt(session)

    def _deactivate_impl(self) -> None:
        del self.session

    def describe(self) -> str:
        # Before activation: the providers asked for (the session uses them in this order).
        providers = self.session.get_providers() if self.active else self.providers
        used = ",".join(p.replace("ExecutionProvider", "") for p in providers)
        return f"onnxruntime[{used}] threads={self.threads or 'auto'}"


def _info(arg: ort.NodeArg) -> TensorInfo:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise BackendError(f"unsupported ONNX tensor type {arg.type} for {arg.name}")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorInfo(arg.name, shape, np.dtype(dtype))
