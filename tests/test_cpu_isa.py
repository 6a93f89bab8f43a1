"""edgecrystal/cpu_isa.py: the INT8 family from faked /proc/cpuinfo text and CPUID maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecrystal import cpu_isa

ICELAKE = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 ssse3 sse4_1 avx avx2 avx512f avx512bw avx512_vnni
"""
HASWELL = "processor\t: 0\nflags\t\t: fpu sse2 ssse3 avx avx2 fma\n"
ALDER_LAKE = "flags\t: sse2 avx avx2 avx_vnni\n"
SAPPHIRE = "flags\t: avx2 avx512f amx_tile amx_int8 amx_bf16\n"
OLD_XEON = "flags\t: sse2 ssse3 sse4_1 sse4_2 avx\n"
ORIN = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n"
GRAVITON3 = "Features\t: fp asimd asimddp sve i8mm bf16\n"
CORTEX_A57 = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"


@pytest.mark.parametrize(("text", "machine", "family"), [
    (ICELAKE, "x86_64", cpu_isa.X86_VNNI), (ALDER_LAKE, "x86_64", cpu_isa.X86_VNNI),
    (SAPPHIRE, "x86_64", cpu_isa.X86_VNNI), (HASWELL, "x86_64", cpu_isa.X86_AVX2),
    (OLD_XEON, "x86_64", cpu_isa.X86_OLDER), (ORIN, "aarch64", cpu_isa.ARM64_DOTPROD),
    (GRAVITON3, "aarch64", cpu_isa.ARM64_I8MM), (CORTEX_A57, "aarch64", cpu_isa.ARM64),
    (HASWELL, "riscv64", cpu_isa.UNKNOWN),
])
def test_family_from_cpuinfo_flags(text: str, machine: str, family: str) -> None:
    assert cpu_isa.family_of(cpu_isa.cpuinfo_flags(text), machine) == family


def test_detect_reads_the_file_and_trusts_agreeing_cpuid(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ICELAKE)
    isa = cpu_isa.detect(cpuinfo, "x86_64", cpuid={"AVX2": True, "AVX512VNNI": True})
    assert (isa.family, isa.source) == (cpu_isa.X86_VNNI, "cpuinfo")
    assert isa.flags == {"avx2", "avx512_vnni"}
    assert "x86-vnni" in isa.describe()


def test_cpuid_wins_where_cpuinfo_describes_another_cpu(tmp_path: Path) -> None:
    """qemu-user -cpu Haswell on a VNNI host: /proc/cpuinfo is the host's, CPUID is Haswell's.
    The emulated process runs ONNX Runtime's AVX2 kernels, so it is an AVX2 machine."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ICELAKE + "flags\t: avx_vnni\n")
    isa = cpu_isa.detect(cpuinfo, "x86_64", cpuid={"AVX2": True, "AVX512VNNI": False,
                                                    "AVX512F": False})
    assert (isa.family, isa.source) == (cpu_isa.X86_AVX2, "cpuid")


def test_no_cpuinfo_uses_cpuid_alone(tmp_path: Path) -> None:
    isa = cpu_isa.detect(tmp_path / "absent", "aarch64", cpuid={"ASIMD": True, "ASIMDDP": True})
    assert isa.family == cpu_isa.ARM64_DOTPROD


def test_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECRYSTAL_CPU_FAMILY", cpu_isa.X86_AVX2)
    assert cpu_isa.detect(tmp_path / "absent", "x86_64", cpuid={}).family == cpu_isa.X86_AVX2
