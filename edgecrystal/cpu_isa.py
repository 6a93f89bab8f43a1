"""Which instruction-set family this CPU is, for INT8: the family decides whether ONNX Runtime's
integer kernels compute a quantised model exactly.

ONNX Runtime multiplies u8 activations by s8 weights with VPDPBUSD where the CPU has VNNI
(AVX512-VNNI, AVX-VNNI, AMX-INT8: exact int32 sums), but on AVX2 without VNNI with VPMADDUBSW,
whose int16 pair sums saturate: a model quantised u8 x s8 gives other numbers there (a finder
mask of ~1e-5 where FP32 says 0.98). ARM64 multiplies with SDOT/UDOT (asimddp) or SMMLA (i8mm),
exact. So an INT8 variant is made for, and checked on, one family, and runs only on it.

Two sources of flags: /proc/cpuinfo (the kernel's word for the host) and CPUID as this process
sees it (numpy's runtime dispatch reads it, as ONNX Runtime does). They differ under an emulator
or a hypervisor that masks features (qemu-user `-cpu Haswell` shows the host's cpuinfo); where
they disagree, what this process can execute wins, since that is what ONNX Runtime dispatches on.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

X86_VNNI = "x86-vnni"
X86_AVX2 = "x86-avx2"
X86_OLDER = "x86-sse"
ARM64_I8MM = "arm64-i8mm"
ARM64_DOTPROD = "arm64-dotprod"
ARM64 = "arm64"
UNKNOWN = "unknown"
FAMILIES = (X86_VNNI, X86_AVX2, X86_OLDER, ARM64_I8MM, ARM64_DOTPROD, ARM64, UNKNOWN)

# /proc/cpuinfo flag -> numpy's CPUID feature name, for the flags numpy can confirm.
_CPUID_NAMES = {"avx2": "AVX2", "avx512_vnni": "AVX512VNNI", "avx512f": "AVX512F",
                "asimddp": "ASIMDDP", "asimd": "ASIMD"}
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuIsa:
    family: str
    flags: frozenset[str]  # the INT8-relevant flags that decided it
    source: str  # "cpuinfo", "cpuid" (cpuinfo disagreed with what runs), or "none"

    def describe(self) -> str:
        shown = ",".join(sorted(self.flags)) or "no int8 flags"
        return f"{self.family} ({shown}; from {self.source})"


def cpuinfo_flags(text: str) -> frozenset[str]:
    """The flags of the first processor in /proc/cpuinfo text ("flags" on x86, "Features" on
    ARM64), lower case."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.lower().split())
    return frozenset()


def family_of(flags: frozenset[str], machine: str) -> str:
    """The INT8 family of a CPU with `flags` on `machine` (platform.machine())."""
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        if any(flag in flags for flag in _VNNI_FLAGS):
            return X86_VNNI
        return X86_AVX2 if "avx2" in flags else X86_OLDER
    if machine in ("aarch64", "arm64"):
        if "i8mm" in flags:
            return ARM64_I8MM
        return ARM64_DOTPROD if "asimddp" in flags else ARM64
    return UNKNOWN


def relevant(flags: frozenset[str]) -> frozenset[str]:
    return flags & {"avx2", *_VNNI_FLAGS, "amx_tile", "asimddp", "i8mm"}


def reconcile(flags: frozenset[str], cpuid: Mapping[str, bool] | None
              ) -> tuple[frozenset[str], str]:
    """`flags` (cpuinfo) checked against `cpuid` (numpy's feature map; None where unknown).
    When CPUID denies a flag cpuinfo lists, cpuinfo describes another CPU than the one this
    process runs on: keep only what CPUID confirms (flags it cannot confirm, such as avx_vnni
    and amx_int8, are dropped: without them the family is the cautious one)."""
    if not cpuid:
        return flags, "cpuinfo" if flags else "none"
    denied = [flag for flag, name in _CPUID_NAMES.items()
              if flag in flags and name in cpuid and not cpuid[name]]
    if not denied and flags:
        return flags, "cpuinfo"
    confirmed = frozenset(flag for flag, name in _CPUID_NAMES.items() if cpuid.get(name))
    return confirmed, "cpuid"


def _numpy_cpuid() -> dict[str, bool] | None:
    """numpy's CPUID feature map (numpy >= 2 keeps it in numpy._core, older in numpy.core)."""
    import importlib

    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = getattr(importlib.import_module(name), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(features, dict):
            return {str(k): bool(v) for k, v in features.items()}
    return None


def detect(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None,
           cpuid: Mapping[str, bool] | None = None) -> CpuIsa:
    """This machine's INT8 family. EDGECRYSTAL_CPU_FAMILY overrides it (one of FAMILIES), for a
    machine whose flags lie in a way neither source shows."""
    forced = os.environ.get("EDGECRYSTAL_CPU_FAMILY", "").strip()
    if forced in FAMILIES:
        return CpuIsa(forced, frozenset(), "EDGECRYSTAL_CPU_FAMILY")
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    flags, source = reconcile(cpuinfo_flags(text), _numpy_cpuid() if cpuid is None else cpuid)
    return CpuIsa(family_of(flags, machine or platform.machine()), relevant(flags), source)
