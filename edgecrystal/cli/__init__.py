"""The `edgecrystal` command. Each area registers its commands from its own module; those
modules import only typer and the standard library at import time, so `--help` is instant and
heavy libraries (TensorFlow, ONNX Runtime, TensorRT) load inside the command that needs them."""

from __future__ import annotations

import sys

import typer

from ..errors import EdgeCrystalError
from . import bench, convert, data, importers, index, runtime, shipped, train

app = typer.Typer(
    name="edgecrystal",
    help="Score protein crystallization images where they are taken.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Score protein crystallization images where they are taken."""


for area in (data, train, importers, convert, runtime, bench, index, shipped):
    area.register(app)


@app.command("version")
def version() -> None:
    """Print edgecrystal's version."""
    from .. import PREPROCESS_VERSION, __version__

    typer.echo(f"edgecrystal {__version__} (preprocessing {PREPROCESS_VERSION})")


def _console_logging() -> None:
    """Library modules log through `edgecrystal.*` loggers; at the console their INFO lines
    (progress, what was chosen) go to stderr as plain text. `serve` replaces this with its own
    handler (timestamps, or journald priorities)."""
    import logging

    package = logging.getLogger("edgecrystal")
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        package.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expected failures become one line on stderr and a non-zero exit."""
    _console_logging()
    try:
        # Outside standalone mode Click returns a command's typer.Exit code instead of exiting.
        code = app(args=argv, prog_name="edgecrystal", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except EdgeCrystalError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as exc:
        # Click's (or Typer's vendored Click's) usage errors: duck-typed so that both the
        # Typer that bundles its own Click and older ones on JetPack images work.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)
            sys.exit(2)
        _fail(" ".join(exc.format_message().split()), exc.exit_code or 2)


def _fail(message: str, code: int) -> None:
    print(f"edgecrystal: error: {message}", file=sys.stderr)
    sys.exit(code)
