"""`edgecrystal doctor`: what this machine can run (edgecrystal.doctor)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor() -> None:
    """Say what this machine can run: CPU instruction set, ONNX Runtime providers, GPU and CUDA
    binding, TensorRT and its JetPack row, DLA cores, and the backends `auto` can choose."""
    from edgecrystal.doctor import report

    for line in report():
        typer.echo(line)
