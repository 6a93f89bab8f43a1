"""The `edgecrystal` command. Each area registers its commands from its own module; those
modules import only typer and the standard library at import time, so `--help` is instant and
heavy libraries (TensorFlow, ONNX Runtime, TensorRT) load inside the command that needs them."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from ..errors import EdgeCrystalError
from . import (
    bench,
    bundle,
    convert,
    data,
    doctor,
    importers,
    index,
    measure,
    runtime,
    shipped,
    train,
)

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


for area in (data, train, importers, convert, runtime, bench, measure, index, bundle, shipped,
             doctor):
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
        args = runtime.ray_address_filled(sys.argv[1:] if argv is None else argv)
        code = app(args=args, prog_name="edgecrystal", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except EdgeCrystalError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except ImportError as exc:
        extra = missing_extra(exc)
        if extra is None:
            _internal_error(exc)
        _fail(f"this command needs the {extra} extra: pip install 'edgecrystal[{extra}]' "
              f"({exc.name} is not installed)", 2)
    except Exception as exc:
        # Click's (or Typer's vendored Click's) usage errors: duck-typed so that both the
        # Typer that bundles its own Click and older ones on JetPack images work.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            _internal_error(exc)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)
            sys.exit(2)
        _fail(" ".join(exc.format_message().split()), exc.exit_code or 2)


# Top-level modules each optional extra brings (pyproject's optional-dependencies).
EXTRA_MODULES = {
    "train": ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "tensorboard"),
    "tensorrt": ("tensorrt", "cuda", "pycuda"),
    "index": ("sqlalchemy", "alembic", "psycopg"),
    "ui": ("starlette", "uvicorn", "jinja2"),
    "ray": ("ray",),
}
# An unexpected exception: one line for the user, the traceback kept for the bug report.
INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE
DEBUG_ENV = "EDGECRYSTAL_DEBUG"


def missing_extra(exc: ImportError) -> str | None:
    """The extra whose package is missing when `exc` is an import of one, else None."""
    top = (exc.name or "").split(".")[0]
    return next((extra for extra, mods in EXTRA_MODULES.items() if top in mods), None)


def _internal_error(exc: BaseException) -> NoReturn:
    """A bug, not a user's mistake: say so in one line and keep the traceback in a file (or on
    stderr with EDGECRYSTAL_DEBUG=1) so it can be reported."""
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    if os.environ.get(DEBUG_ENV):
        sys.stderr.write(text)
        _fail(f"internal error: {type(exc).__name__}", INTERNAL_ERROR_EXIT)
    where = "(traceback not saved)"
    try:
        with tempfile.NamedTemporaryFile("w", prefix="edgecrystal-error-", suffix=".txt",
                                         delete=False, encoding="utf-8") as fh:
            fh.write(f"edgecrystal {' '.join(sys.argv[1:])}\n{text}")
        where = f"traceback in {fh.name}"
    except OSError:
        pass
    message = " ".join(str(exc).split())[:200]
    _fail(f"internal error (a bug in edgecrystal): {type(exc).__name__}: {message}; {where}; "
          f"rerun with {DEBUG_ENV}=1 to print it", INTERNAL_ERROR_EXIT)


def _fail(message: str, code: int) -> NoReturn:
    print(f"edgecrystal: error: {message}", file=sys.stderr)
    sys.exit(code)
