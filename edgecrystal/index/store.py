"""The index database: open (and migrate) by URL, upsert rows, read plates, wells and hits.

SQLite (one file, the embedded default) and PostgreSQL (one server for several imagers) through
SQLAlchemy Core. Writes are upserts keyed on the image's real path: scoring an image again
updates its row and its scores and never adds a second one. A person's label stays on the row
while the image's bytes (sha256) stay the same.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

import sqlalchemy as sa

from ..errors import EdgeCrystalError, UsageError
from .rows import HitRow, ImageRow, IndexRow
from .schema import images, scores

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
CRYSTALS = "crystals"
# Both ends of one advisory lock: two daemons starting at once migrate one after the other.
_MIGRATION_LOCK = 0x0EDC0001
# Rows per transaction when many arrive at once (sync, a burst): big enough to amortise the
# round trips to a server, small enough to keep a failed batch cheap to retry.
BATCH_ROWS = 500


class IndexUnavailable(EdgeCrystalError):
    """The index database cannot be opened or used (one line, says what to do)."""


class UnknownPlate(EdgeCrystalError):
    """No such plate (or well). `what` names it; `hint` is a plate that differs only in case.
    The CLI adds the index it searched; the review page does not show the server's paths."""

    exit_code = 1

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(f"unknown {what}{hint}")
        self.what, self.hint = what, hint


class PlateSummary(TypedDict):
    """One plate on the plates page: counts of its images, wells, inspections and hit wells."""

    plate: str
    images: int
    wells: int
    inspections: int
    crystal_wells: int
    not_understood: int  # images whose name gave no well
    last_inspected: dt.datetime | None


@dataclass
class _PlateSeen:
    wells: set[str] = field(default_factory=set)
    crystal_wells: set[str] = field(default_factory=set)
    not_understood: int = 0
    last_inspected: dt.datetime | None = None


def engine_for(url: str) -> sa.Engine:
    """An engine for `url`: sqlite:///FILE (a bare path means that too) or postgresql://..."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 5})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: sqlite3.Connection, _record: object) -> None:
            cursor = connection.cursor()
            # WAL: the review page reads while a daemon writes, without "database is locked".
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3})


def normalise_url(url: str) -> str:
    if "://" not in url:
        path = Path(url).expanduser().resolve()
        return f"sqlite:///{path}"
    if url.startswith(("postgresql://", "postgres://")):
        # psycopg 3 (binary wheels everywhere, Jetson included) whatever SQLAlchemy's default.
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith(("sqlite:", "postgresql+")):
        raise UsageError(f"index URL {redact(url)} is neither sqlite:///FILE nor "
                         "postgresql://USER@HOST/DB")
    return url


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]


def sqlite_file(url: str) -> Path | None:
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return None
    database = sa.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


@contextlib.contextmanager
def _sqlite_migration_lock(database: Path | None) -> Iterator[None]:
    """One process at a time brings a SQLite index's schema up to date: two that open a new
    index at once (the daemon's writer and `ui`, say) would both create Alembic's table. An
    flock on a lock file beside the database, never on the database itself: closing any
    descriptor of the database file drops the POSIX locks SQLite holds on it in this process.
    PostgreSQL takes an advisory lock in `migrate` instead."""
    if database is None:
        yield
        return
    try:
        fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:  # a read-only folder: nothing can be migrated there, SQLite will say so
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class Index:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = engine_for(self.url)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, must_exist: bool = False) -> Index:
        """Open the index, creating the SQLite file's folder and bringing the schema up to date.
        Raises IndexUnavailable (one line) when the database cannot be reached, and with
        `must_exist` (the commands that only read) when a SQLite file is not there: a mistyped
        --index must not leave an empty database behind."""
        database = sqlite_file(url)
        if database is not None and must_exist and not database.is_file():
            raise IndexUnavailable(f"index {database} does not exist (check --index; "
                                   "`edgecrystal index sync ROOT --index ...` builds one)")
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        index = cls(url)
        if migrate:
            try:
                index.migrate()
            except sa.exc.SQLAlchemyError as exc:
                index.close()
                raise IndexUnavailable(f"index {redact(index.url)}: {one_line(exc)}") from None
        return index

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema
    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _sqlite_migration_lock(sqlite_file(self.url)), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # ------------------------------------------------------------------ writing
    def upsert(self, rows: Sequence[IndexRow]) -> int:
        """Insert or update `rows` (and replace their scores); returns how many were written."""
        for start in range(0, len(rows), BATCH_ROWS):
            with self.engine.begin() as connection:
                self._upsert_batch(connection, rows[start : start + BATCH_ROWS])
        return len(rows)

    def _upsert_batch(self, connection: sa.Connection, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        # The last word on a path wins when one batch holds it twice.
        unique = list({row.path: row for row in rows}.values())
        insert = _dialect_insert(connection)
        statement = insert(images)
        excluded = statement.excluded
        same_bytes = sa.or_(images.c.sha256 == excluded.sha256, excluded.sha256.is_(None))
        updates: dict[str, object] = {
            column.name: excluded[column.name] for column in images.columns
            if column.name not in ("id", "path", "human_label", "human_by", "human_at")
        }
        for human in ("human_label", "human_by", "human_at"):
            updates[human] = sa.case((same_bytes, images.c[human]), else_=sa.null())
        connection.execute(
            statement.on_conflict_do_update(index_elements=[images.c.path], set_=updates),
            [row.values for row in unique])
        paths = [row.path for row in unique]
        ids = dict(connection.execute(
            sa.select(images.c.path, images.c.id).where(images.c.path.in_(paths))).all())
        connection.execute(scores.delete().where(scores.c.image_id.in_(list(ids.values()))))
        score_rows = [{"image_id": ids[row.path], "class_name": name, "score": value}
                      for row in unique for name, value in row.scores.items()]
        if score_rows:
            connection.execute(scores.insert(), score_rows)

    def set_human_label(self, image_id: int, label: str, who: str) -> ImageRow:
        now = dt.datetime.now(dt.timezone.utc)
        with self.engine.begin() as connection:
            done = connection.execute(
                images.update().where(images.c.id == image_id)
                .values(human_label=label, human_by=who, human_at=now))
            if done.rowcount != 1:
                raise KeyError(image_id)
        row = self.image(image_id)
        if row is None:  # deleted between the two statements
            raise KeyError(image_id)
        return row

    # ------------------------------------------------------------------ reading
    def known_classes(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(
                sa.select(scores.c.class_name).distinct().order_by(scores.c.class_name))
                .scalars())

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(images))
                       .scalar_one())

    def plates(self) -> list[PlateSummary]:
        """Every plate: images, wells, inspections, last inspection, wells whose latest
        (human, else model) label is crystals."""
        seen: dict[str, _PlateSeen] = {}
        for row in self._latest_per_drop():
            plate = seen.setdefault(row["plate"], _PlateSeen())
            if row["well"] is None:
                plate.not_understood += 1
                continue
            plate.wells.add(row["well"])
            if is_hit(row):
                plate.crystal_wells.add(row["well"])
            when = row["inspected_at"]
            if when is not None and (plate.last_inspected is None
                                     or when > plate.last_inspected):
                plate.last_inspected = when
        with self.engine.connect() as connection:
            counts: dict[str, int] = dict(connection.execute(
                sa.select(images.c.plate, sa.func.count()).group_by(images.c.plate)).all())
            inspections: dict[str, int] = dict(connection.execute(
                sa.select(images.c.plate, sa.func.count(sa.distinct(images.c.inspection)))
                .group_by(images.c.plate)).all())
        return [PlateSummary(plate=name, images=counts.get(name, 0), wells=len(info.wells),
                             inspections=inspections.get(name, 0),
                             crystal_wells=len(info.crystal_wells),
                             not_understood=info.not_understood,
                             last_inspected=info.last_inspected)
                for name, info in sorted(seen.items())]

    def plate_wells(self, plate: str) -> list[ImageRow]:
        """The latest inspection of every drop on `plate` (UnknownPlate when it has none)."""
        rows = self._latest_per_drop(plate)
        if not rows:
            raise UnknownPlate(f"plate {plate!r}")
        return rows

    def history(self, plate: str, well: str | None = None) -> list[ImageRow]:
        """Every image of `plate` (one well's with `well`), oldest inspection first, with scores."""
        query = sa.select(images).where(images.c.plate == plate)
        if well is not None:
            query = query.where(images.c.well == well)
        query = query.order_by(images.c.well, images.c.drop_number, images.c.inspected_at,
                               images.c.inspection, images.c.path)
        with self.engine.connect() as connection:
            rows = [_row(r) for r in connection.execute(query).mappings()]
            self._attach_scores(connection, rows)
        if not rows:
            what = f"plate {plate!r} well {well!r}" if well else f"plate {plate!r}"
            raise UnknownPlate(what, self._case_hint(plate))
        return rows

    def _case_hint(self, plate: str) -> str:
        """Plates are matched as the imager wrote them; name those that differ only in case."""
        query = (sa.select(images.c.plate).distinct()
                 .where(sa.func.lower(images.c.plate) == plate.lower(), images.c.plate != plate))
        with self.engine.connect() as connection:
            near = sorted(connection.execute(query).scalars())
        if not near:
            return ""
        return (" (plate names are matched as the imager wrote them: did you mean "
                + " or ".join(repr(name) for name in near) + "?)")

    def hits(self, class_name: str, min_score: float, limit: int = 500) -> list[HitRow]:
        """Images scoring at least `min_score` for `class_name`, best first, across plates."""
        query = (sa.select(images, scores.c.score.label("hit_score"))
                 .join(scores, scores.c.image_id == images.c.id)
                 .where(scores.c.class_name == class_name, scores.c.score >= min_score)
                 .order_by(scores.c.score.desc(), images.c.path).limit(limit))
        return self._hit_rows(query)

    def crystal_hits(self, limit: int = 500) -> list[HitRow]:
        """The crystals hit list: a person's crystals label, or, where nobody relabelled it, the
        model's `crystals_hit` (the bundle's threshold chosen for recall); highest crystals
        score first. `hit_score` is the crystals score."""
        crystals = scores.c.class_name == CRYSTALS
        query = (sa.select(images, scores.c.score.label("hit_score"))
                 .outerjoin(scores, sa.and_(scores.c.image_id == images.c.id, crystals))
                 .where(sa.or_(images.c.human_label == CRYSTALS,
                               sa.and_(images.c.human_label.is_(None),
                                       images.c.crystals_hit.is_(True))))
                 .order_by(sa.func.coalesce(scores.c.score, -1.0).desc(), images.c.path)
                 .limit(limit))
        return self._hit_rows(query)

    def _hit_rows(self, query: sa.Select[Any]) -> list[HitRow]:
        """A hits query's rows (the images columns and `hit_score`), with their scores."""
        with self.engine.connect() as connection:
            rows = [cast(HitRow, _row(r)) for r in connection.execute(query).mappings()]
            self._attach_scores(connection, rows)
        return rows

    def uncertain_queue(self, limit: int = 500, after: int | None = None) -> list[ImageRow]:
        """Images the model was uncertain about and nobody has labelled yet, least sure first
        (lowest top score); `after`: leave that image out (the one just looked at)."""
        query = sa.select(images).where(images.c.uncertain.is_(True),
                                        images.c.human_label.is_(None),
                                        images.c.status == "ok")
        if after is not None:
            query = query.where(images.c.id != after)
        query = query.order_by(sa.func.coalesce(images.c.label_score, 0.0), images.c.path) \
            .limit(limit)
        with self.engine.connect() as connection:
            rows = [_row(r) for r in connection.execute(query).mappings()]
            self._attach_scores(connection, rows)
        return rows

    def image(self, image_id: int) -> ImageRow | None:
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(images).where(images.c.id == image_id)) \
                .mappings().first()
            if found is None:
                return None
            rows = [_row(found)]
            self._attach_scores(connection, rows)
        return rows[0]

    def human_labelled(self) -> list[ImageRow]:
        query = sa.select(images).where(images.c.human_label.is_not(None)) \
            .order_by(images.c.plate, images.c.well, images.c.path)
        with self.engine.connect() as connection:
            rows = [_row(r) for r in connection.execute(query).mappings()]
            self._attach_scores(connection, rows)
        return rows

    def _latest_per_drop(self, plate: str | None = None) -> list[ImageRow]:
        """The newest image of each (plate, well, drop); images without a well each stand alone."""
        query = sa.select(images)
        if plate is not None:
            query = query.where(images.c.plate == plate)
        with self.engine.connect() as connection:
            rows = [_row(r) for r in connection.execute(query).mappings()]
            latest: dict[tuple[str, str | None, int | str | None], ImageRow] = {}
            for row in rows:
                key = (row["plate"], row["well"], row["drop_number"]) if row["well"] \
                    else (row["plate"], None, row["path"])
                if key not in latest or _newer(row, latest[key]):
                    latest[key] = row
            result = sorted(latest.values(), key=lambda r: (r["plate"], r["well"] or "~",
                                                            r["drop_number"] or 0, r["path"]))
            self._attach_scores(connection, result)
        return result

    def _attach_scores(self, connection: sa.Connection, rows: Sequence[ImageRow]) -> None:
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            row["scores"] = {}
        ids = list(by_id)
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            for image_id, name, value in connection.execute(
                    sa.select(scores.c.image_id, scores.c.class_name, scores.c.score)
                    .where(scores.c.image_id.in_(chunk))):
                by_id[image_id]["scores"][name] = value


def effective_label(row: ImageRow) -> str | None:
    """A person's label where there is one, else the model's."""
    return row.get("human_label") or row.get("label")


def is_hit(row: ImageRow) -> bool:
    """A crystals hit: a person said crystals, or nobody relabelled it and the model's result
    says `crystals_hit` (a row indexed before that existed: its label is crystals)."""
    if row.get("human_label"):
        return bool(row["human_label"] == CRYSTALS)
    hit = row.get("crystals_hit")
    return bool(hit) if hit is not None else row.get("label") == CRYSTALS


def _newer(row: ImageRow, other: ImageRow) -> bool:
    floor = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return (row["inspected_at"] or floor, row["path"]) > (other["inspected_at"] or floor,
                                                          other["path"])


def _row(mapping: sa.RowMapping) -> ImageRow:
    """One row as read; its scores are attached after. The images columns are ImageRow's keys
    (tests/test_index_rows.py keeps them equal), hence the cast."""
    row = dict(mapping)
    for key in ("inspected_at", "scored_at", "indexed_at", "human_at"):
        value = row.get(key)
        # SQLite hands back naive datetimes; everything stored is UTC.
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            row[key] = value.replace(tzinfo=dt.timezone.utc)
    row["scores"] = {}
    return cast(ImageRow, row)


def _dialect_insert(
        connection: sa.Connection) -> Callable[[sa.Table], postgresql.Insert | sqlite.Insert]:
    """The dialect's INSERT with ON CONFLICT (both spell it alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def one_line(exc: BaseException) -> str:
    text = getattr(exc, "orig", None) or exc
    return " ".join(str(text).split())[:300] or type(exc).__name__


def iter_chunks(items: Iterable[T], size: int) -> Iterable[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def default_url() -> str:
    """Where serve keeps its index when the config names none: the systemd state directory
    (/var/lib/edgecrystal) under the unit, else $XDG_STATE_HOME/edgecrystal (or
    ~/.local/state/edgecrystal), as results.db."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if not state:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        state = os.path.join(base, "edgecrystal")
    return f"sqlite:///{os.path.join(state, 'results.db')}"
