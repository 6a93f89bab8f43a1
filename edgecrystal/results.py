"""Result files beside each image, the overlay picture, and the per-folder CSV summary.

For `plate/A01_1.jpg`: `plate/A01_1.jpg.edgecrystal.json` (schema in docs/results.md), optionally
`plate/A01_1.jpg.edgecrystal.png`, and one `plate/edgecrystal-summary.csv` per folder. Everything
is written atomically (temporary file, fsync, rename). The result file is also the record of work
done: an image whose result matches its size, mtime and the current bundle is not scored again.
A result file's content is a `ResultRecord`: written, read, summarised and indexed through it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, crystal_boxes
from .atomic import is_temporary, temporary_target, write_bytes
from .crystal_boxes import CrystalBox
from .errors import EdgeCrystalError
from .pipeline import ModelInfo, Scored

log = logging.getLogger(__name__)

SCHEMA = "edgecrystal-result"
# 2: scores calibrated by the bundle's fitted temperature; crystals_hit, uncertain, warnings,
# drop.reason, model.confidence and model.precision_fallback added (docs/results.md).
# 3: the crystal model's fields (crystals, crystal_count, largest_crystal_px, target; present
# only where the bundle has a crystal model) and its disagreement in `uncertain`.
SCHEMA_VERSION = 3
RESULT_SUFFIX = ".edgecrystal.json"
OVERLAY_SUFFIX = ".edgecrystal.png"
SUMMARY_NAME = "edgecrystal-summary.csv"
OWN_MARK = ".edgecrystal."
# Result files are for people and lab software too, not only the daemon's user.
FILE_MODE = 0o644
# Errors whose cause can go away without the file changing (permissions fixed, file restored):
# such a result is only trusted while the file's ctime is unchanged too (chmod changes ctime).
TRANSIENT_KINDS = ("unreadable", "missing")



def result_path(image: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(image)}{RESULT_SUFFIX}")


def overlay_path(image: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(image)}{OVERLAY_SUFFIX}")


# A result's temporary file lives for one write + fsync + rename (milliseconds); one this old
# was left by a writer that was killed (kill -9, power loss) and is only debris.
STALE_TEMPORARY_S = 10.0


def remove_stale_temporaries(folder: Path, older_than_s: float = STALE_TEMPORARY_S) -> int:
    """Delete the temporary result and overlay files (atomic.write_bytes' `.NAME.XXXX.tmp`)
    in `folder` that a killed writer left behind; returns how many. Younger ones may belong to
    a writer still at work (another process scoring the same folder) and are left alone."""
    removed = 0
    cutoff = time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        target = temporary_target(entry.name)
        if target is None or not target.endswith((RESULT_SUFFIX, OVERLAY_SUFFIX)):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed


def is_own_output(name: str) -> bool:
    """Files edgecrystal writes (results, overlays, summaries, temporaries): never inputs."""
    return OWN_MARK in name or name == SUMMARY_NAME or is_temporary(name)


def well_of(name: str) -> str | None:
    """The well an imager's file name names ("A01_1.jpg" -> "A01"; a Minstrel name -> its
    well); None for a name no known layout understands: a wrong well is worse than none."""
    from .naming import NameReader

    return NameReader().read(name).well


# ---------------------------------------------------------------------- the record
class ResultSchemaError(EdgeCrystalError):
    """A result file this code cannot read: a newer or unknown schema_version, or a field of
    the wrong type. One line naming the file's version (or field) and what this code reads."""


@dataclass(frozen=True)
class ImageInfo:
    """The scored file as it was when read: what a result vouches for (the done-check)."""

    name: str
    size_bytes: int | None = None
    mtime: str | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class DropInfo:
    """Where the finder put the drop; `reason` only when it found none."""

    found: bool
    box: tuple[int, int, int, int] | None
    area_px: int
    area_fraction: float
    reason: str | None = None


@dataclass(frozen=True)
class ErrorInfo:
    kind: str | None
    reason: str | None


@dataclass
class ResultRecord:
    """One result file's content (docs/results.md). `to_json`/`from_json` are the only ways in
    and out of the file's JSON; `from_json` refuses a schema_version newer than this code's.

    `model` stays the mapping `ModelInfo.as_dict` wrote: which models ran is the pipeline's to
    describe, the record only carries it (its `fingerprint` and `classes` are read here).
    `crystals` is None when the bundle has no crystal model; then the crystal fields are absent
    from the file, while an empty list (the model ran, found none) writes count 0."""

    image: ImageInfo
    status: str
    model: dict[str, object] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    created: str = ""
    edgecrystal_version: str = ""
    schema_version: int = SCHEMA_VERSION
    label: str | None = None
    crystals_hit: bool | None = None
    uncertain: bool | None = None
    scores: dict[str, float] = field(default_factory=dict)
    drop: DropInfo | None = None
    warnings: list[str] = field(default_factory=list)
    crystals: list[CrystalBox] | None = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fingerprint(self) -> str | None:
        value = self.model.get("fingerprint")
        return value if isinstance(value, str) else None

    @property
    def classes(self) -> list[str]:
        value = self.model.get("classes")
        return [str(c) for c in value] if isinstance(value, list) else []

    @property
    def crystal_count(self) -> int | None:
        return None if self.crystals is None else len(self.crystals)

    @property
    def largest_crystal_px(self) -> int | None:
        return None if self.crystals is None else crystal_boxes.largest_side(self.crystals)

    @property
    def target(self) -> tuple[int, int] | None:
        return None if self.crystals is None else crystal_boxes.target(self.crystals)

    @classmethod
    def from_scored(cls, scored: Scored, model: ModelInfo) -> ResultRecord:
        st = scored.stat
        image = ImageInfo(
            name=scored.path.name,
            size_bytes=st.st_size if st else scored.size_bytes,
            mtime=_iso(st.st_mtime) if st else None,
            mtime_ns=st.st_mtime_ns if st else None,
            ctime_ns=st.st_ctime_ns if st else None,
            sha256=scored.sha256,
            width=scored.width or None,
            height=scored.height or None,
        )
        record = cls(image=image, status=scored.status, model=model.as_dict(),
                     timings_ms=dict(scored.timings_ms), created=_iso(time.time()),
                     edgecrystal_version=__version__)
        if not scored.ok:
            record.error = ErrorInfo(scored.error_kind, scored.error_reason)
            return record
        area = scored.width * scored.height
        record.label, record.crystals_hit = scored.label, scored.crystals_hit
        record.uncertain = scored.uncertain
        record.scores = {c: round(p, 6) for c, p in scored.scores.items()}
        # No finder ran (crop none): there is no drop to report, found or not.
        if scored.searched:
            record.drop = DropInfo(
                found=scored.found, box=scored.box, area_px=scored.area_px,
                area_fraction=round(scored.area_px / area, 6) if area else 0.0,
                reason=scored.drop_reason if not scored.found else None)
        record.warnings = list(scored.warnings)
        record.crystals = None if scored.crystals is None else list(scored.crystals)
        return record

    def to_json(self) -> dict[str, object]:
        """The file's JSON object, keys in the documented order."""
        out: dict[str, object] = {"schema": SCHEMA, "schema_version": self.schema_version,
                                  "image": asdict(self.image), "status": self.status}
        if self.ok:
            out["label"] = self.label
            out["crystals_hit"] = self.crystals_hit
            out["uncertain"] = self.uncertain
            out["scores"] = dict(self.scores)
            out["drop"] = None if self.drop is None else _drop_json(self.drop)
            if self.warnings:  # absent when there is nothing to say (docs/results.md)
                out["warnings"] = list(self.warnings)
            if self.crystals is not None:  # absent without a crystal model
                spot = self.target
                out["crystals"] = [c.as_dict() for c in self.crystals]
                out["crystal_count"] = self.crystal_count
                out["largest_crystal_px"] = self.largest_crystal_px
                out["target"] = list(spot) if spot else None
        else:
            error = self.error or ErrorInfo(None, None)
            out["error"] = {"kind": error.kind, "reason": error.reason}
        out["model"] = dict(self.model)
        out["timings_ms"] = dict(self.timings_ms)
        out["created"] = self.created
        out["edgecrystal_version"] = self.edgecrystal_version
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ResultRecord:
        """The record of a result file's JSON object. ResultSchemaError for another schema,
        a schema_version newer than this code's (or not a version at all), a mistyped field."""
        if data.get("schema") != SCHEMA:
            raise ResultSchemaError(f"not an {SCHEMA} file (schema {data.get('schema')!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ResultSchemaError(f"unknown schema_version {version!r} (this edgecrystal "
                                    f"reads 1 to {SCHEMA_VERSION})")
        if version > SCHEMA_VERSION:
            raise ResultSchemaError(f"schema_version {version} is newer than this edgecrystal "
                                    f"{__version__} reads (1 to {SCHEMA_VERSION}): upgrade it")
        read = _Reader(data, "")
        image = read.section("image") or _Reader({}, "image.")
        drop = read.section("drop")
        error = read.section("error")
        return cls(
            schema_version=version,
            image=ImageInfo(name=image.text("name") or "", size_bytes=image.integer("size_bytes"),
                            mtime=image.text("mtime"), mtime_ns=image.integer("mtime_ns"),
                            ctime_ns=image.integer("ctime_ns"), sha256=image.text("sha256"),
                            width=image.integer("width"), height=image.integer("height")),
            status=read.text("status") or "error",
            model=read.mapping("model") or {},
            timings_ms=read.numbers("timings_ms"),
            created=read.text("created") or "",
            edgecrystal_version=read.text("edgecrystal_version") or "",
            label=read.text("label"),
            crystals_hit=read.flag("crystals_hit"),
            uncertain=read.flag("uncertain"),
            scores=read.numbers("scores"),
            drop=None if drop is None else DropInfo(
                found=bool(drop.flag("found")), box=drop.box("box"),
                area_px=drop.integer("area_px") or 0,
                area_fraction=drop.number("area_fraction") or 0.0, reason=drop.text("reason")),
            warnings=read.texts("warnings"),
            crystals=read.crystals("crystals"),
            error=None if error is None else ErrorInfo(error.text("kind"), error.text("reason")),
        )


def _drop_json(drop: DropInfo) -> dict[str, object]:
    out: dict[str, object] = {"found": drop.found,
                              "box": list(drop.box) if drop.box else None,
                              "area_px": drop.area_px, "area_fraction": drop.area_fraction}
    if not drop.found and drop.reason:
        out["reason"] = drop.reason
    return out


class _Reader:
    """Typed reads from one JSON object of a result file: a missing key or null reads as None,
    a value of the wrong type is a ResultSchemaError that names the field."""

    def __init__(self, data: dict[str, object], where: str) -> None:
        self.data, self.where = data, where

    def _wrong(self, key: str, want: str) -> ResultSchemaError:
        return ResultSchemaError(f"field {self.where}{key} is {self.data[key]!r}, "
                                 f"expected {want}")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._wrong(key, "text")

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise self._wrong(key, "a whole number")

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise self._wrong(key, "a number")

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self._wrong(key, "true or false")

    def mapping(self, key: str) -> dict[str, object] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        raise self._wrong(key, "an object")

    def section(self, key: str) -> _Reader | None:
        found = self.mapping(key)
        return None if found is None else _Reader(found, f"{self.where}{key}.")

    def numbers(self, key: str) -> dict[str, float]:
        inner = self.section(key)
        if inner is None:
            return {}
        return {name: inner.number(name) or 0.0 for name in inner.data}

    def _list(self, key: str) -> list[object] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, list):
            return value
        raise self._wrong(key, "a list")

    def texts(self, key: str) -> list[str]:
        return [str(item) for item in self._list(key) or []]

    def box(self, key: str) -> tuple[int, int, int, int] | None:
        value = self._list(key)
        if value is None:
            return None
        whole = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        if len(value) != 4 or len(whole) != 4:
            raise self._wrong(key, "[x0, y0, x1, y1] in whole pixels")
        x0, y0, x1, y1 = whole
        # Boxes are written x0 < x1, y0 < y1 within the image: anything else was not written here.
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise self._wrong(key, "[x0, y0, x1, y1] with 0 <= x0 < x1 and 0 <= y0 < y1")
        return x0, y0, x1, y1

    def crystals(self, key: str) -> list[CrystalBox] | None:
        value = self._list(key)
        if value is None:
            return None
        boxes = []
        for n, item in enumerate(value):
            if not isinstance(item, dict):
                raise ResultSchemaError(f"field {self.where}{key}[{n}] is {item!r}, "
                                        "expected an object")
            one = _Reader({str(k): v for k, v in item.items()}, f"{self.where}{key}[{n}].")
            box = one.box("box")
            if box is None:
                raise ResultSchemaError(f"field {self.where}{key}[{n}].box is missing")
            boxes.append(CrystalBox(box=box, area_px=one.integer("area_px") or 0,
                                    score=one.number("score") or 0.0, kind=one.text("kind")))
        return boxes


# ---------------------------------------------------------------------- one result file
def write_result(scored: Scored, model: ModelInfo, *, overlay: bool = False) -> Path:
    """Write the result (and the overlay when asked) beside the image; returns the result path.

    timings_ms.write covers drawing the overlay and encoding the record; the fsync'd writes
    themselves cannot be timed inside the file they produce."""
    t = time.perf_counter()
    overlay_png = draw_overlay(scored) if overlay and scored.ok else None
    scored.timings_ms["write"] = round((time.perf_counter() - t) * 1000.0, 3)
    rec = ResultRecord.from_scored(scored, model).to_json()
    data = (json.dumps(rec, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if overlay_png is not None:
        write_bytes(overlay_path(scored.path), overlay_png, mode=FILE_MODE)
    out = result_path(scored.path)
    write_bytes(out, data, mode=FILE_MODE)
    return out


def load_result(path: str | os.PathLike[str]) -> dict[str, object] | None:
    """A result file's JSON object as written; None when missing, unreadable or not one of
    ours. `read_result` is the typed record; this is for tools that compare files as they are."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
        return None
    return rec


def read_result(path: str | os.PathLike[str]) -> ResultRecord | None:
    """A result file's record; None when missing, unreadable or not one of ours.
    ResultSchemaError (its message prefixed with the file) for a newer schema_version or a
    mistyped field: such a file is ours but not readable by this code."""
    data = load_result(path)
    if data is None:
        return None
    try:
        return ResultRecord.from_json(data)
    except ResultSchemaError as exc:
        raise ResultSchemaError(f"{os.fspath(path)}: {exc}") from None


def is_done(image: str | os.PathLike[str], fingerprint: str,
            st: os.stat_result | None = None) -> bool:
    """True when `image` has a result for this bundle that matches its current size and mtime.
    A result this code cannot read (a newer schema) is not done: scoring writes one it can."""
    if st is None:
        try:
            st = os.stat(image)
        except OSError:
            return False
    try:
        rec = read_result(result_path(image))
    except ResultSchemaError:
        return False
    if rec is None:
        return False
    img = rec.image
    if (img.size_bytes != st.st_size or img.mtime_ns != st.st_mtime_ns
            or rec.fingerprint != fingerprint):
        return False
    kind = rec.error.kind if rec.error else None
    return not (rec.status == "error" and kind in TRANSIENT_KINDS
                and img.ctime_ns != st.st_ctime_ns)


# ---------------------------------------------------------------------- overlay picture
_COLOURS = [(0, 200, 255), (40, 220, 40), (255, 140, 0), (200, 80, 255), (255, 255, 0)]


def draw_overlay(scored: Scored) -> bytes | None:
    """PNG bytes: the drop outline (or box), the crystal boxes and target (crystal_marks) and
    'label score' on a downscaled copy."""
    import cv2
    import numpy as np

    from .crystal_marks import caption, draw_crystals

    if scored.preview is None or not scored.width:
        return None
    img = np.ascontiguousarray(scored.preview[:, :, ::-1])  # RGB -> BGR for OpenCV drawing
    scale = img.shape[1] / scored.width
    names = list(scored.scores)
    colour = _COLOURS[names.index(scored.label) % len(_COLOURS)] if scored.label in names \
        else _COLOURS[0]
    thick = max(1, round(max(img.shape[:2]) / 300))
    if scored.outline is not None:
        pts = np.round(scored.outline.astype(np.float64) * scale).astype(np.int32)
        cv2.polylines(img, [pts], True, colour, thick, cv2.LINE_AA)
    elif scored.found and scored.box:
        x0, y0, x1, y1 = (round(v * scale) for v in scored.box)
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, thick)
    if scored.crystals:
        draw_crystals(img, scored.crystals, scale, thick)
    text = f"{scored.label} {scored.scores.get(scored.label or '', 0.0):.2f}"
    if scored.searched and not scored.found:
        text += " (no drop found)"
    text += caption(scored.crystals)
    font_scale = max(0.4, img.shape[1] / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
    cv2.rectangle(img, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), cv2.FILLED)
    cv2.putText(img, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thick,
                cv2.LINE_AA)
    ok, enc = cv2.imencode(".png", img)
    return enc.tobytes() if ok else None


# ---------------------------------------------------------------------- folder summary
class Summaries:
    """Per-folder CSV summaries rebuilt from the folder's result files.

    Rebuilding from the result files (not appending) keeps the CSV right whatever happened:
    rescoring, a restart, a crash between a result and the CSV. Parsed rows are cached by the
    result file's mtime, so a rebuild after a batch re-reads only the new results (cheap for
    96-1536 images); the CSV is rewritten atomically, and only when its content changed."""

    def __init__(self, classes: list[str] | tuple[str, ...] = ()) -> None:
        self.classes = list(classes)
        self._rows: dict[Path, tuple[int, ResultRecord]] = {}
        self._written: dict[Path, bytes] = {}

    def update(self, folder: str | os.PathLike[str]) -> Path | None:
        folder = Path(folder)
        rows = []
        seen = set()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return None
        for entry in entries:
            if not entry.name.endswith(RESULT_SUFFIX):
                continue
            path = Path(entry.path)
            image_name = entry.name[: -len(RESULT_SUFFIX)]
            if not (folder / image_name).exists():
                continue  # the image was removed: so is its row
            try:
                mtime = entry.stat().st_mtime_ns
            except OSError:
                continue
            seen.add(path)
            cached = self._rows.get(path)
            if cached is None or cached[0] != mtime:
                try:
                    rec = read_result(path)
                except ResultSchemaError as exc:  # a newer edgecrystal's: not this one's row
                    log.warning("summary leaves out %s", exc)
                    continue
                if rec is None:
                    continue
                cached = (mtime, rec)
                self._rows[path] = cached
            rows.append(cached[1])
        for path in [p for p in self._rows if p.parent == folder and p not in seen]:
            del self._rows[path]
        if not rows:
            return None
        data = self._render(rows)
        out = folder / SUMMARY_NAME
        if self._written.get(out) == data:
            return out
        write_bytes(out, data, mode=FILE_MODE)
        self._written[out] = data
        return out

    def _render(self, records: list[ResultRecord]) -> bytes:
        classes = list(self.classes)
        for rec in records:
            classes.extend(c for c in rec.classes if c not in classes)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "well", "status", "label", "crystals_hit", "uncertain", *classes,
                    "drop_found", "drop_area_fraction", "error_kind", "fingerprint", "created",
                    "crystal_count", "largest_crystal_px"])
        for rec in sorted(records, key=lambda r: r.image.name):
            name = rec.image.name
            drop = rec.drop
            w.writerow([
                name, well_of(name) or "", rec.status, rec.label or "",
                _flag(rec.crystals_hit), _flag(rec.uncertain),
                *[_fmt(rec.scores.get(c)) for c in classes],
                "" if drop is None else int(drop.found),
                "" if drop is None else _fmt(drop.area_fraction),
                (rec.error.kind if rec.error else None) or "",
                rec.fingerprint or "", rec.created,
                _count(rec.crystal_count), _count(rec.largest_crystal_px),
            ])
        return buf.getvalue().encode("utf-8")


def finish_folders(classes: list[str] | tuple[str, ...], images: list[Path]) -> None:
    """After a run over `images` (`score`, `score --ray`): each of their folders gets its
    summary rewritten and loses the temporaries a killed writer left there."""
    summaries = Summaries(classes)
    for folder in sorted({p.parent for p in images}):
        remove_stale_temporaries(folder)
        summaries.update(folder)


def _flag(v: object) -> str:
    """1/0 for a recorded true/false; empty when the result has none (an error, an older file)."""
    return "" if not isinstance(v, bool) else str(int(v))


def _count(v: int | None) -> str:
    """A count or size; empty when the result has none (no crystal model, an error)."""
    return "" if v is None else str(v)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")
