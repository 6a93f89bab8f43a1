"""`edgecrystal build-engines` and `edgecrystal verify`: ONNX variants, INT8 calibration,
TensorRT engines, and the comparison of every variant against Keras.

Only typer and the standard library load at startup; ONNX, ONNX Runtime, TensorFlow and
TensorRT load inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("build-engines")(build_engines)
    app.command("verify")(verify)


def build_engines(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder (bundle.json + Keras "
                                                "models).")],
    precision: Annotated[str, typer.Option(help="fp32, fp16, int8, or all.")] = "all",
    calib: Annotated[Path | None, typer.Option(
        help="Data set for INT8 calibration (labels.csv or class folders); needed for int8 "
             "unless the bundle already has a calibration record.")] = None,
    calib_count: Annotated[int | None, typer.Option(
        help="Calibration images per model (8..1024; default: as last time, else 256).")] = None,
    calib_method: Annotated[str | None, typer.Option(
        help="entropy, minmax or percentile (default: as last time, else the model's own: "
             "percentile for the classifier and crystal model, entropy for the finder).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the calibration image choice (default: as last time, else 0).")] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch of the TensorRT profile.")] = 16,
    opt_batch: Annotated[int, typer.Option(help="Batch TensorRT optimises for.")] = 4,
    workspace: Annotated[int, typer.Option(help="TensorRT builder workspace, MB.")] = 1024,
    hardware_compat: Annotated[bool, typer.Option(
        "--hardware-compat", help="Engines that run on any Ampere or newer GPU "
                                  "(TensorRT 8.6+).")] = False,
    legacy_int8_calibrator: Annotated[bool, typer.Option(
        "--legacy-int8-calibrator",
        help="TensorRT < 10 only: implicit INT8 calibration of the FP32 ONNX instead of the "
             "Q/DQ model.")] = False,
    dla_core: Annotated[int | None, typer.Option(
        "--dla-core", help="Build the engines for this DLA core (Orin NX / AGX Orin; FP16 "
                           "and INT8 only, static batch = --opt-batch).")] = None,
    gpu_fallback: Annotated[bool, typer.Option(
        "--gpu-fallback", help="With --dla-core: layers DLA cannot run go to the GPU.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild everything.")] = False,
    int8_gate: Annotated[str | None, typer.Option(
        "--int8-gate", help="INT8 accuracy gate bounds against FP32 on held-out images, e.g. "
                            "agreement=0.98,dice_loss=0.01,rank=0.95,crystal_dice_loss=0.05 "
                            "(those are the defaults).")] = None,
) -> None:
    """Make the ONNX variants (FP32, FP16, INT8 Q/DQ) and, with an NVIDIA GPU and TensorRT,
    engines for it. Re-running with nothing changed rebuilds nothing."""
    from edgecrystal.converters.build import Options
    from edgecrystal.converters.build import build_engines as run
    from edgecrystal.interface import PRECISIONS

    if precision == "all":
        precisions = PRECISIONS
    elif precision in PRECISIONS:
        precisions = tuple(p for p in PRECISIONS if p in ("fp32", precision))
    else:
        raise UsageError(f"--precision must be fp32, fp16, int8 or all (got {precision})")
    from edgecrystal.engines.trt_build import BuildOptions

    # The DLA flags' combinations, refused before any export or calibration work.
    BuildOptions("fp16", opt_batch=opt_batch, max_batch=max_batch, workspace_mb=workspace,
                 hardware_compat=hardware_compat, dla_core=dla_core,
                 gpu_fallback=gpu_fallback).check()
    if dla_core is not None and precision == "fp32":
        raise UsageError("--dla-core: DLA runs FP16 and INT8 only; use --precision fp16, int8 "
                         "or all (the FP32 ONNX is still made, as their source)")
    if calib is not None and not calib.exists():
        raise UsageError(f"calibration data {calib} does not exist")
    opts = Options(precisions=precisions, calib=calib, calib_count=calib_count,
                   calib_method=calib_method, seed=seed, opt_batch=opt_batch,
                   max_batch=max_batch, workspace_mb=workspace, hardware_compat=hardware_compat,
                   legacy_int8_calibrator=legacy_int8_calibrator, force=force,
                   int8_gate=int8_gate, dla_core=dla_core, gpu_fallback=gpu_fallback)
    report = run(bundle, opts, log=typer.echo)
    made = len(report.made)
    typer.echo(f"{made} made, {len(report.steps) - made} kept")
    typer.echo(report.engines)


def verify(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    data: Annotated[Path, typer.Option(help="Data set to compare on (labels.csv or class "
                                            "folders).")],
    n: Annotated[int, typer.Option(help="Images to compare on.")] = 32,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the results as JSON here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the image choice.")] = 0,
) -> None:
    """Run every variant that can run here (Keras, ONNX FP32/FP16/INT8, TensorRT engines) on
    the same images: difference against Keras, label agreement, Dice and AUC per variant; then
    the image files through the pipeline `score` runs, per backend and precision."""
    from edgecrystal.converters.verify import format_table, run_verify

    from ..atomic import write_json

    result = run_verify(bundle, data, n, seed, log=typer.echo)
    typer.echo(format_table(result))
    if json_out is not None:
        write_json(json_out, result)
        typer.echo(f"wrote {json_out}")
