"""`edgecrystal bundle export`: copy what a deployment needs out of a trained bundle.

Only typer and the standard library at import time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..confidence_fit import ConfidenceSection


def export(
    bundle: Annotated[Path, typer.Argument(help="Trained bundle with ONNX variants.")],
    out: Annotated[Path, typer.Argument(help="New folder to write the deployment bundle to.")],
    runtime: Annotated[bool, typer.Option(
        "--runtime", help="Only what scoring needs: bundle.json and the ONNX variants (no "
        "Keras files, checkpoints or logs).")] = False,
    precision: Annotated[str, typer.Option(
        help="fp32, fp16, int8 or all: the variants to include.")] = "all",
) -> None:
    """Write a deployment copy of BUNDLE into OUT; every file is checked against its hash."""
    from ..bundle_export import PRECISIONS, export_runtime

    if not runtime:
        raise UsageError("only --runtime exports exist (copy the folder for a full bundle)")
    precisions = PRECISIONS if precision == "all" else (precision,)
    done = export_runtime(bundle, out, precisions)
    typer.echo(f"wrote {out}: {len(done['files'])} files, {done['bytes'] / 1e6:.1f} MB, "
               "hashes checked")


def fit_confidence(
    bundle: Annotated[Path, typer.Argument(help="Bundle with a classifier FP32 ONNX.")],
    data: Annotated[Path, typer.Option(
        "--data", help="Held-out labelled wells (labels.csv or class folders), never the "
        "images the classifier trained on.")],
    recall: Annotated[float, typer.Option(
        "--recall", help="Share of the held-out crystals the crystals threshold keeps as "
        "hits.")] = 0.95,
    threads: Annotated[int, typer.Option("--threads", help="ONNX Runtime threads (0: "
                                         "all cores).")] = 0,
) -> None:
    """Fit BUNDLE's calibration (temperature) and crystals threshold on held-out wells through
    its FP32 ONNX, and save them in bundle.json: scoring applies them (docs/results.md)."""
    from ..confidence_fit import fit_confidence as fit

    section = fit(bundle, data, recall=recall, threads=threads)
    typer.echo(describe_fit(bundle, section))


def describe_fit(bundle: Path, section: ConfidenceSection) -> str:
    """One or two lines about a confidence fit, for this command and `train classifier`."""
    if "temperature" not in section:
        return f"confidence of {bundle}: {section.get('note', 'not fitted')}"
    metrics = section.get("metrics", {})
    line = (f"confidence of {bundle}: temperature {section['temperature']:.3f} on "
            f"{section['data']['images']} held-out images (NLL {metrics['nll']['model']:.3f} -> "
            f"{metrics['nll']['calibrated']:.3f}, ECE {metrics['ece']['model']:.3f} -> "
            f"{metrics['ece']['calibrated']:.3f})")
    crystals = metrics.get("crystals")
    if crystals:
        line += (f"\ncrystals threshold {section['crystals_threshold']:.4f}: recall "
                 f"{crystals['recall']:.3f} of {crystals['held_out']} held-out crystals, "
                 f"{crystals['hits']} hits")
    elif section.get("note"):
        line += f"\n{section['note']}"
    return line


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    bundle_app = typer.Typer(help="Work with model bundles.", no_args_is_help=True)
    bundle_app.command("export")(export)
    bundle_app.command("fit-confidence")(fit_confidence)
    app.add_typer(bundle_app, name="bundle")
