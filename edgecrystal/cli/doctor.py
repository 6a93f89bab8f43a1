"""`edgecrystal doctor`: what this machine can run (edgecrystal.doctor); `edgecrystal gpu-check`:
this GPU exercised without TensorRT (edgecrystal.gpu_check)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    app.command("gpu-check")(gpu_check)


def doctor() -> None:
    """Say what this machine can run: CPU instruction set, ONNX Runtime providers, GPU and CUDA
    binding, TensorRT and its JetPack row, DLA cores, and the backends `auto` can choose."""
    from edgecrystal.doctor import report

    for line in report():
        typer.echo(line)


def gpu_check() -> None:
    """Exercise this GPU without TensorRT: cuda-python device identity, page-locked H2D/D2H
    copies checked byte for byte, DLA cores and the onnxruntime-trt provider; one line, exit 1
    when something did not hold."""
    from edgecrystal.errors import EdgeCrystalError
    from edgecrystal.gpu_check import check

    try:
        typer.echo(check())
    except EdgeCrystalError as exc:
        typer.echo(f"gpu-check FAILED: {exc}")
        raise typer.Exit(1) from None
