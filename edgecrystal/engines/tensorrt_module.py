"""The one place that imports tensorrt: every caller goes through `load_tensorrt()`, so a machine
without TensorRT (or with a broken install) gets one clear BackendError, never an ImportError
or an OSError about a missing libnvinfer from deep inside a command."""

from __future__ import annotations

from types import ModuleType

from edgecrystal.errors import BackendError

INSTALL_HINT = ("JetPack: python3-libnvinfer; workstation: pip install "
                "edgecrystal[tensorrt-cu12] or edgecrystal[tensorrt-cu13] and TensorRT itself")


def load_tensorrt() -> ModuleType:
    """The tensorrt module, or a BackendError saying why it cannot be used here."""
    try:
        import tensorrt
    except ImportError as exc:
        # The bindings install from the package index without libnvinfer; importing them then
        # fails with the missing library's name, which is the useful part of the message.
        raise BackendError(f"TensorRT is not importable here ({_first_line(exc)}); "
                           f"{INSTALL_HINT}") from None
    except OSError as exc:
        raise BackendError(f"TensorRT's libraries do not load here ({_first_line(exc)}); "
                           f"{INSTALL_HINT}") from None
    return tensorrt


def tensorrt_version() -> str | None:
    """TensorRT's version, or None where it cannot be imported (for reports and `info`)."""
    try:
        return str(load_tensorrt().__version__)
    except BackendError:
        return None


def version_tuple(trt: ModuleType) -> tuple[int, int]:
    major, minor = [*str(trt.__version__).split("."), "0"][:2]
    return int(major), int(minor)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
