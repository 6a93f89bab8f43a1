#!/usr/bin/env python
"""Make a Python that runs as an AVX2 CPU without VNNI, children included.

    .venv/bin/python scripts/avx2_python.py DIR      # prints DIR/bin/python
    DIR/bin/python -m pytest tests/test_int8_gate.py

QEMU's user-mode emulator (`qemu-x86_64 -cpu Haswell`) runs one process as a Haswell, but a
process it starts is executed by the host kernel, natively: a test that runs `sys.executable -m
edgecrystal ...` would check the child on the host's CPU family (x86-vnni on a VNNI machine),
not the emulated one. Here `bin/python` is a shell script that starts the emulator with itself
as argv[0], so `sys.executable` is that script and every child is emulated too. Beside it,
the running interpreter's venv is mirrored (its pyvenv.cfg copied, its lib/ linked), so the
same packages import. The Haswell features QEMU's TCG cannot give are turned off, which keeps
QEMU from printing a warning line per feature into every child's stderr (tests that count
stderr lines would count those).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# Haswell's CPUID bits that TCG does not implement (QEMU 7.2 warns once per bit and process).
CPU = "Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm"


def make(root: Path) -> Path:
    """DIR/bin/python, emulating this interpreter (and its venv) as an AVX2 CPU."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("avx2_python: qemu-x86_64 not found (Debian's qemu-user; "
                         "scripts/setup-services.sh installs it)")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    if sys.prefix != sys.base_prefix:  # a venv: its site-packages are found from pyvenv.cfg
        shutil.copy(Path(sys.prefix) / "pyvenv.cfg", root / "pyvenv.cfg")
        lib = root / "lib"
        if lib.is_symlink() or lib.exists():
            lib.unlink()
        lib.symlink_to(Path(sys.prefix) / "lib")
    python = root / "bin" / "python"
    python.write_text("#!/bin/sh\n"
                      f'exec {qemu} -cpu {CPU} -0 "$0" {Path(sys.executable).absolute()} "$@"\n')
    python.chmod(0o755)
    return python


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="where bin/python (and the venv's mirror) go")
    print(make(ap.parse_args().dir.resolve()))


if __name__ == "__main__":
    main()
