"""The results index's commands: `edgecrystal index sync|export-labels`, `edgecrystal history`
and `edgecrystal ui` (the review page). Imports only typer and the standard library at module
level; SQLAlchemy, Starlette and Uvicorn load inside the commands (the `index`/`ui` extras)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ..index.history import DropHistory
    from ..index.rows import ImageRow

INDEX_HELP = ("Index database URL: sqlite:///FILE or postgresql://USER@HOST/DB (default: "
              "$EDGECRYSTAL_INDEX, else serve's default SQLite file; see docs/review.md).")
PATTERN_HELP = ("Your imager's file names: a regex with named groups plate, well (or row and "
                "column), drop, inspection, date, time (repeatable; tried before the built-in "
                "layouts).")

index_app = typer.Typer(help="The plate results index: sync it from result files, export "
                             "people's labels.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("history")(history)
    app.command("ui")(ui)


def require(extra: str) -> None:
    """One line instead of an ImportError when the extra is not installed."""
    from ..errors import UsageError
    from ..index import available

    needed = ["sqlalchemy", "alembic"]
    if extra == "ui":
        needed += ["starlette", "uvicorn", "jinja2"]
    import importlib.util

    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing or not available():
        raise UsageError(f"this needs the `{extra}` extra ({', '.join(missing)} missing): "
                         f"pip install 'edgecrystal[{extra}]'")


def index_url(given: str | None) -> str:
    if given:
        return given
    from ..index.store import default_url

    return os.environ.get("EDGECRYSTAL_INDEX") or default_url()


@index_app.command("sync")
def sync(
    root: Annotated[Path, typer.Argument(help="Folder to walk for IMAGE.edgecrystal.json.")],
    index: Annotated[str | None, typer.Option("--index", help=INDEX_HELP)] = None,
    name_pattern: Annotated[list[str] | None, typer.Option(
        "--name-pattern", help=PATTERN_HELP)] = None,
    rock_maker_columns: Annotated[int, typer.Option(
        help="Columns of Rock Maker plates (12: 96 wells, 24: 384).")] = 12,
) -> None:
    """Bring the index up to date from the result files under ROOT (after the database was
    away, or to build an index for results scored before it existed). Safe to repeat."""
    require("index")
    from ..errors import UsageError
    from ..index.store import Index, redact
    from ..index.sync import sync as run_sync
    from ..naming import NameReader

    if not root.is_dir():
        raise UsageError(f"no such folder: {root}")
    reader = NameReader(name_pattern or (), rock_maker_columns)
    url = index_url(index)
    with Index.open(url) as store:
        written = run_sync(store, root, reader,
                           progress=lambda n: typer.echo(f"indexed {n}", err=True))
        total = store.count()
    typer.echo(f"{written} result(s) from {root} in {redact(store.url)} ({total} rows in all)")


@index_app.command("export-labels")
def export_labels(
    out: Annotated[Path, typer.Argument(help="New folder for images/ and labels.csv.")],
    index: Annotated[str | None, typer.Option("--index", help=INDEX_HELP)] = None,
) -> None:
    """Write every image a person labelled (with that label) as a training folder in the
    project's labels.csv layout: retrain with `edgecrystal train classifier OUT ...`."""
    require("index")
    from ..index.export import export_labels as run_export
    from ..index.store import Index

    with Index.open(index_url(index), must_exist=True) as store:
        written, missing = run_export(store, out)
    gone = f"; {missing} labelled image(s) no longer on disk" if missing else ""
    typer.echo(f"{written} labelled image(s) in {out}/labels.csv{gone}")


def history(
    plate: Annotated[str, typer.Argument(help="Plate name as the index has it.")],
    well: Annotated[str | None, typer.Option("--well", help="One well, e.g. A01.")] = None,
    index: Annotated[str | None, typer.Option("--index", help=INDEX_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """A plate's drops across inspections: the label at each inspection, the first one with
    crystals, and where the label changed. Exit 1 for an unknown plate or well."""
    require("index")
    from ..index.history import drop_histories
    from ..index.store import Index, UnknownPlate, redact

    wanted = _well(well) if well else None
    with Index.open(index_url(index), must_exist=True) as store:
        try:
            histories = drop_histories(store.history(plate, wanted))
        except UnknownPlate as exc:  # which index was searched: a mistyped --index shows
            raise UnknownPlate(f"{exc.what} in index {redact(store.url)}", exc.hint) from None
    if as_json:
        import json

        typer.echo(json.dumps([h.as_dict() for h in histories], indent=2))
        return
    for drop in histories:
        typer.echo(_history_text(drop))


def _well(text: str) -> str:
    """--well as the index writes wells: A1, a01 and A01 are all A01."""
    import re

    from ..errors import UsageError
    from ..naming import well_name

    match = re.fullmatch(r"([A-Za-z]{1,2})(\d{1,2})", text.strip())
    well = well_name(match[1], match[2]) if match else None
    if well is None:
        raise UsageError(f"--well {text} is not a well (a row letter and a column: A1, H12, "
                         "AF48)")
    return well


def _history_text(drop: DropHistory) -> str:
    from ..index.store import effective_label

    where = (f"{drop.well} drop {drop.drop}" if drop.drop else drop.well) if drop.well \
        else os.path.basename(drop.inspections[0]["path"])
    first = drop.first_crystals
    lines = [f"{where}: " + (f"crystals since inspection {_when(first)}" if first
                             else "no crystals")]
    for row in drop.inspections:
        label = effective_label(row) or f"error ({row.get('error_kind')})"
        crystals = (row.get("scores") or {}).get("crystals")
        mark = f"  (person: {row['human_by']}; model said {row['label']})" \
            if row.get("human_label") else ""
        score = f"{crystals:.2f}" if crystals is not None else "  - "
        size = row["largest_crystal_px"]
        largest = f"  largest crystal {size} px" if size is not None else ""
        lines.append(f"  {_when(row):<28} {label:<12} crystals {score}{largest}{mark}")
    for before, after in drop.changes:
        lines.append(f"  changed {effective_label(before)} -> {effective_label(after)} at "
                     f"{_when(after)}")
    if drop.growth_px is not None:
        measured = drop.measured
        lines.append(f"  largest crystal {measured[0]['largest_crystal_px']} -> "
                     f"{measured[-1]['largest_crystal_px']} px ({drop.growth_px:+d} px) from "
                     f"{_when(measured[0])} to {_when(measured[-1])}")
    return "\n".join(lines)


def _when(row: ImageRow) -> str:
    when = row.get("inspected_at")
    stamp = when.strftime("%Y-%m-%d %H:%M") if when else "?"
    return f"{row['inspection']} ({stamp})" if row.get("inspection") else stamp


def ui(
    index: Annotated[str | None, typer.Option("--index", help=INDEX_HELP)] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. Beyond localhost every request needs the token.")]
        = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML with `index` and `token` (the write token).")] = None,
) -> None:
    """The review page: plates as 96/384-well grids coloured by label, each well's image and
    history, hits across plates, relabelling (needs the token: $EDGECRYSTAL_UI_TOKEN or
    `token` in --config). JSON API under /api/. Binds to 127.0.0.1 unless told otherwise."""
    require("ui")
    import uvicorn

    from ..errors import UsageError
    from ..index.store import Index, redact
    from ..ui.app import LOOPBACK_NAMES, create_app, is_loopback

    settings = _ui_config(config)
    url = index_url(index or settings.get("index"))
    token = os.environ.get("EDGECRYSTAL_UI_TOKEN") or settings.get("token") or None
    local = is_loopback(host)
    if not local and not token:
        raise UsageError(f"--host {host} is reachable from other machines: set a token "
                         "(EDGECRYSTAL_UI_TOKEN or `token` in --config) first")
    _refuse_busy_port(host, port)
    store = Index.open(url, must_exist=True)
    hosts = (*LOOPBACK_NAMES, host) if local else ("*",)
    app = create_app(store, token, read_open=local, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"review page: http://{shown}:{port}/  index {redact(store.url)}  writing "
               f"{'needs the token' if token else 'off (no token set)'}", err=True)
    if not local:
        # A browser cannot send the token header: this link (good once) lets one read.
        typer.echo(f"to read in a browser, open (once): http://{shown}:{port}"
                   f"{app.state.login_links.issue()}", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()


def _refuse_busy_port(host: str, port: int) -> None:
    """One line when another program listens there already (uvicorn would log a traceback-
    like error and exit 1). A port freed between this check and uvicorn's bind is no harm."""
    import socket

    from ..errors import UsageError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except PermissionError:
            raise UsageError(f"port {port} on {host} needs privileges (choose --port above "
                             "1023)") from None
        except OSError:
            raise UsageError(f"port {port} on {host} is in use (choose --port)") from None


def _ui_config(path: Path | None) -> dict[str, str]:
    from ..errors import UsageError

    if path is None:
        return {}
    from ..daemon.config import _toml

    try:
        raw = _toml().loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"index", "token"})
    if unknown or not all(isinstance(v, str) for v in raw.values()):
        raise UsageError(f"{path}: only `index` and `token` (strings) are known here")
    return raw
