"""`edgecrystal bundle export`: copy what a deployment needs out of a trained bundle.

Only typer and the standard library at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError


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


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    bundle_app = typer.Typer(help="Work with model bundles.", no_args_is_help=True)
    bundle_app.command("export")(export)
    app.add_typer(bundle_app, name="bundle")
