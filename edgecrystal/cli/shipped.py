"""`edgecrystal models list|path`: the models that ship with edgecrystal and how they were made.

Only typer and the standard library at import time."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """The shipped models with their provenance (command, seed, data, metrics)."""
    from ..pretrained import list_models

    models = list_models()
    if as_json:
        typer.echo(json.dumps(models, indent=2))
        return
    for m in models:
        typer.echo(f"{m['name']}: {m['path']}")
        width = f", base filters {m['base_filters']}" if m["base_filters"] else ""
        typer.echo(f"  profile {m['profile']}, input {m['input_size']} px{width}, "
                   f"{(m['flops'] or 0) / 1e9:.2f} GFLOPs per image")
        typer.echo(f"  files: {', '.join(f'{k} ({v})' for k, v in m['files'].items())}")
        typer.echo(f"  trained {m['trained']} in {m['training_seconds']} s, seed {m['seed']}")
        typer.echo(f"  command: {m['command']}")
        typer.echo(f"  data: {json.dumps(m['data'])}")
        for key, value in m["metrics"].items():
            typer.echo(f"  {key}: {value}")


def path_cmd(
    name: Annotated[str, typer.Argument(
        help="Shipped model: finder, bundle (the default bundle: the shipped finder and "
             "classifier), or crystals (the crystal model, the start of `train crystals --init "
             "default`).")],
) -> None:
    """Print the folder of a shipped model's bundle (usable as --bundle, read-only)."""
    from ..pretrained import bundle_path

    typer.echo(str(bundle_path(name)))


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Models that ship with edgecrystal.", no_args_is_help=True)
    models_app.command("list")(list_cmd)
    models_app.command("path")(path_cmd)
    app.add_typer(models_app, name="models")
