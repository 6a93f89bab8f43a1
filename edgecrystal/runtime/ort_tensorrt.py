"""`--backend onnxruntime-trt`: ONNX Runtime with its TensorRT execution provider (CUDA, then
CPU, behind it for what TensorRT does not take), running the bundle's TensorRT ONNX variants.

The second GPU path beside the raw bindings (runtime.tensorrt_runner): onnxruntime-gpu (on a
Jetson the Jetson Zoo wheel) builds the engines itself and keeps them in an engine cache. The
cache lives in the bundle's engines folder, keyed like engine.json's folders plus the
onnxruntime version (engines/ort<version>-<gpu>-sm<cc>-trt<version>/): a cached engine is tied to
the GPU, the TensorRT and the onnxruntime that made it, and a change of any of them starts a
new folder instead of loading a stale engine. DLA cores go through the provider's own options.
The option names are ONNX Runtime's documented TensorRT provider options
(onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html); a test checks every
name used here against that list and the provider names against the installed onnxruntime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BackendError, UsageError, one_line
from .onnxruntime_runner import OrtSessionRunner, session_options

if TYPE_CHECKING:
    from ..engines.device import DeviceIdentity
    from ..engines.manifest import EngineBundle

TRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
INSTALL_HINT = ("install edgecrystal[onnxruntime-trt] (onnxruntime-gpu, in place of "
                "onnxruntime) with TensorRT, or on a Jetson the Jetson Zoo onnxruntime-gpu wheel")
WORKSPACE_BYTES = 1 << 30


def unavailable_reason() -> str | None:
    """None where this onnxruntime has the TensorRT and CUDA providers; otherwise why not."""
    import onnxruntime as ort

    have = list(ort.get_available_providers())
    missing = [p for p in (TRT_PROVIDER, CUDA_PROVIDER) if p not in have]
    if missing:
        return (f"onnxruntime {ort.__version__} here has no {' or '.join(missing)} (it has "
                f"{', '.join(have)}); {INSTALL_HINT}")
    return None


def cache_folder(bundle_root: Path, identity: DeviceIdentity, ort_version: str) -> Path:
    """engines/ort<version>-<gpu>-sm<cc>-trt<version>/ of the bundle."""
    from edgecrystal.engines.manifest import ENGINES_DIR, folder_name

    return Path(bundle_root) / ENGINES_DIR / f"ort{ort_version}-{folder_name(identity)}"


def provider_options(precision: str, cache: Path, dla_core: int | None = None,
                     device: int = 0) -> dict[str, str]:
    """The TensorRT provider's options for one model (values as strings, as onnxruntime's
    Python API passes them on)."""

    def flag(on: bool) -> str:
        return "True" if on else "False"

    options = {
        "device_id": str(device),
        # The ONNX states its precision (FP16 tensors, INT8 Q/DQ); these let TensorRT use it.
        "trt_fp16_enable": flag(precision in ("fp16", "int8")),
        "trt_int8_enable": flag(precision == "int8"),
        "trt_max_workspace_size": str(WORKSPACE_BYTES),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_dla_enable": flag(dla_core is not None),
    }
    if dla_core is not None:
        options["trt_dla_core"] = str(dla_core)
    return options


def _identity() -> DeviceIdentity:
    """The GPU's identity for the cache folder: TensorRT's version from its Python module where
    installed (onnxruntime-gpu links libnvinfer without it), else 'unknown'."""
    from edgecrystal.engines.device import probe_gpu
    from edgecrystal.engines.tensorrt_module import tensorrt_version

    probe = probe_gpu()
    if probe.identity is None:
        raise BackendError(f"no GPU for onnxruntime's TensorRT provider ({probe.reason})")
    return {**probe.identity, "tensorrt": tensorrt_version() or "unknown"}


def _check_dla(dla_core: int, precision: str, tensorrt: str) -> None:
    from edgecrystal.engines.versions import dla_problem

    flag = f"dla_core {dla_core}"
    problem = dla_problem(tensorrt) if tensorrt != "unknown" else None
    if problem:
        raise UsageError(f"{flag}: {problem}")
    if precision == "fp32":
        raise UsageError(f"{flag}: DLA runs FP16 and INT8 only; serve precision fp16 or int8")


class OrtTensorRTRunner(OrtSessionRunner):
    backend = "onnxruntime-trt"

    def __init__(self, path: str | os.PathLike[str], *, bundle: EngineBundle, precision: str,
                 threads: int = 0, dla_core: int | None = None) -> None:
        super().__init__(str(path))
        import onnxruntime as ort

        problem = unavailable_reason()
        if problem:
            raise BackendError(problem)
        identity = _identity()
        if dla_core is not None:
            _check_dla(dla_core, precision, str(identity["tensorrt"]))
        self.cache = cache_folder(bundle.root, identity, ort.__version__)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.dla_core = dla_core
        self.threads = threads
        providers: list[str | tuple[str, dict[str, str]]] = [
            (TRT_PROVIDER, provider_options(precision, self.cache, dla_core)),
            CUDA_PROVIDER, "CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(self.path, sess_options=session_options(threads),
                                           providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime's TensorRT provider cannot load {self.path}: "
                               f"{one_line(exc)}") from None
        if TRT_PROVIDER not in session.get_providers():
            raise BackendError(f"onnxruntime did not enable its TensorRT provider for "
                               f"{self.path} (it used {', '.join(session.get_providers())})")
        self._adopt(session)
        self.active = True  # loaded here: --backend auto must see a failure while choosing

    def describe(self) -> str:
        where = "gpu" if self.dla_core is None else f"dla{self.dla_core} (GPU fallback by ORT)"
        return f"onnxruntime-trt on {where} cache={self.cache.name}"

    def _close(self) -> None:
        del self.session
