"""`edgecrystal import onnx|savedmodel`: a bundle from a model trained elsewhere.

Only typer and the standard library load at startup; onnx/ONNX Runtime load inside `import onnx`,
TensorFlow only inside `import savedmodel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError

import_app = typer.Typer(name="import", no_args_is_help=True,
                         help="Make a bundle from an ONNX model or a TensorFlow SavedModel "
                              "trained elsewhere.")

CropOption = Annotated[str, typer.Option(
    "--crop", help="finder: the finder cuts the drop out first (give --finder, or the shipped "
                   "default finder is used where there is one); none: the whole image.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(import_app, name="import")


def _classes(value: str) -> list[str]:
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names:
        raise UsageError("--classes is empty (give the model's class names in output order)")
    return names


def _norm(layout: str, mean: str, std: str, bgr: bool, prefix: str = "") -> object:
    from ..importers.wrap import LAYOUTS, Normalisation, parse_triple

    if layout not in LAYOUTS:
        raise UsageError(f"--{prefix}layout must be nchw or nhwc (got {layout})")
    return Normalisation(parse_triple(mean, f"{prefix}mean"), parse_triple(std, f"{prefix}std"),
                         layout, bgr)


def _echo_summary(bundle: Path, summary: dict) -> None:
    for model, info in summary.items():
        typer.echo(f"{model}: {info['file']} ({info['input_size']} px, output "
                   f"{info['output_kind']}, added {info['head']}; max diff vs the original "
                   f"{info['max_abs_diff']:.2g})")
    typer.echo(f"bundle {bundle} ready; next: edgecrystal build-engines {bundle} --calib DATA")


@import_app.command("onnx")
def import_onnx(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to write (new or empty).")],
    classifier: Annotated[Path, typer.Option(help="Classifier ONNX file (float input, "
                                                  "normalisation outside the model).")],
    classes: Annotated[str, typer.Option(help="Class names in the classifier's output order, "
                                              "comma-separated.")],
    mean: Annotated[str, typer.Option(help="Per-channel mean R,G,B the model subtracts (0..1 "
                                           "units when all means and stds are <= 1, else "
                                           "0..255).")],
    std: Annotated[str, typer.Option(help="Per-channel std R,G,B the model divides by.")],
    layout: Annotated[str, typer.Option(help="The classifier input's layout: nchw or "
                                             "nhwc.")] = "nchw",
    bgr: Annotated[bool, typer.Option("--bgr", help="The model takes B,G,R channel order "
                                                    "(mean/std still given R,G,B).")] = False,
    input_size: Annotated[int | None, typer.Option(
        help="Classifier input side, needed only when the model's is not fixed.")] = None,
    output: Annotated[str, typer.Option(
        help="auto (measured), logits (a Softmax is added) or probabilities.")] = "auto",
    crop: CropOption = "finder",
    finder: Annotated[Path | None, typer.Option(help="Finder (drop segmentation) ONNX file: "
                                                     "one drop-probability channel at the "
                                                     "input's size.")] = None,
    finder_layout: Annotated[str | None, typer.Option(help="Finder input layout (default: "
                                                           "--layout).")] = None,
    finder_mean: Annotated[str | None, typer.Option(help="Finder mean (default: "
                                                         "--mean).")] = None,
    finder_std: Annotated[str | None, typer.Option(help="Finder std (default: --std).")] = None,
    force: ForceOption = False,
) -> None:
    """Wrap ONNX models from any framework so that they take edgecrystal's uint8 pixels, check
    them against the originals, and write a bundle build-engines, score and serve use."""
    from ..importers.onnx_import import OUTPUT_KINDS, ModelSource
    from ..importers.onnx_import import import_onnx as run

    if output not in OUTPUT_KINDS:
        raise UsageError(f"--output must be auto, logits or probabilities (got {output})")
    norm = _norm(layout, mean, std, bgr)
    finder_source = None
    if finder is not None:
        finder_norm = _norm(finder_layout or layout, finder_mean or mean, finder_std or std,
                            bgr, "finder-")
        finder_source = ModelSource(finder, finder_norm)  # type: ignore[arg-type]
    summary = run(bundle, ModelSource(classifier, norm, input_size, output),  # type: ignore[arg-type]
                  _classes(classes), crop=crop, finder=finder_source, force=force)
    _echo_summary(bundle, summary)


@import_app.command("savedmodel")
def import_savedmodel(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to write (new or empty).")],
    classifier: Annotated[Path, typer.Option(help="TensorFlow SavedModel folder of the "
                                                  "classifier.")],
    classes: Annotated[str | None, typer.Option(
        help="Bundle classes, comma-separated; the model's own class names are mapped onto "
             "them by name (default: the model's names).")] = None,
    signature: Annotated[str, typer.Option(help="Serving signature to import.")
                         ] = "serving_default",
    input_size: Annotated[int | None, typer.Option(
        help="Pixel input side after the cut, when the model's graph does not fix it.")] = None,
    crop: CropOption = "finder",
    finder: Annotated[Path | None, typer.Option(help="Finder ONNX file (see import onnx).")
                      ] = None,
    finder_layout: Annotated[str, typer.Option(help="Finder input layout.")] = "nchw",
    finder_mean: Annotated[str, typer.Option(help="Finder mean R,G,B.")] = "0,0,0",
    finder_std: Annotated[str, typer.Option(help="Finder std R,G,B.")] = "1,1,1",
    force: ForceOption = False,
) -> None:
    """Import a TensorFlow SavedModel classifier, including one whose signature takes encoded
    image bytes (MARCO's `image_bytes`): the graph is cut after the decoding so that ONNX and
    TensorRT get pixels. Needs TensorFlow and tf2onnx (the train extra)."""
    from ..importers.onnx_import import ModelSource
    from ..importers.savedmodel import import_savedmodel as run

    finder_source = None
    if finder is not None:
        finder_source = ModelSource(finder, _norm(finder_layout, finder_mean, finder_std, False,
                                                  "finder-"))  # type: ignore[arg-type]
    summary = run(bundle, classifier, classes=_classes(classes) if classes else None,
                  signature=signature, input_size=input_size, crop=crop, finder=finder_source,
                  force=force, log=typer.echo)
    _echo_summary(bundle, summary)
