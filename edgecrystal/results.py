"""Result files beside each image, the overlay picture, and the per-folder CSV summary.

For `plate/A01_1.jpg`: `plate/A01_1.jpg.edgecrystal.json` (schema in docs/results.md), optionally
`plate/A01_1.jpg.edgecrystal.png`, and one `plate/edgecrystal-summary.csv` per folder. Everything
is written atomically (temporary file, fsync, rename). The result file is also the record of work
done: an image whose result matches its size, mtime and the current bundle is not scored again.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import is_temporary, temporary_target, write_bytes
from .pipeline import ModelInfo, Scored

SCHEMA = "edgecrystal-result"
# 2: scores calibrated by the bundle's fitted temperature; crystals_hit, uncertain, warnings,
# drop.reason, model.confidence and model.precision_fallback added (docs/results.md).
SCHEMA_VERSION = 2
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


# ---------------------------------------------------------------------- one result file
def make_record(scored: Scored, model: ModelInfo) -> dict[str, Any]:
    st = scored.stat
    image: dict[str, Any] = {
        "name": scored.path.name,
        "size_bytes": st.st_size if st else scored.size_bytes,
        "mtime": _iso(st.st_mtime) if st else None,
        "mtime_ns": st.st_mtime_ns if st else None,
        "ctime_ns": st.st_ctime_ns if st else None,
        "sha256": scored.sha256,
        "width": scored.width or None,
        "height": scored.height or None,
    }
    rec: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "image": image,
        "status": scored.status,
    }
    if scored.ok:
        area = scored.width * scored.height
        rec["label"] = scored.label
        rec["crystals_hit"] = scored.crystals_hit
        rec["uncertain"] = scored.uncertain
        rec["scores"] = {c: round(p, 6) for c, p in scored.scores.items()}
        # No finder ran (crop none): there is no drop to report, found or not.
        rec["drop"] = None if not scored.searched else {
            "found": scored.found,
            "box": list(scored.box) if scored.box else None,
            "area_px": scored.area_px,
            "area_fraction": round(scored.area_px / area, 6) if area else 0.0,
        }
        if rec["drop"] is not None and not scored.found and scored.drop_reason:
            rec["drop"]["reason"] = scored.drop_reason
        if scored.warnings:  # absent when there is nothing to say (docs/results.md)
            rec["warnings"] = list(scored.warnings)
    else:
        rec["error"] = {"kind": scored.error_kind, "reason": scored.error_reason}
    rec["model"] = model.as_dict()
    rec["timings_ms"] = dict(scored.timings_ms)
    rec["created"] = _iso(time.time())
    rec["edgecrystal_version"] = __version__
    return rec


def write_result(scored: Scored, model: ModelInfo, *, overlay: bool = False) -> Path:
    """Write the result (and the overlay when asked) beside the image; returns the result path.

    timings_ms.write covers drawing the overlay and encoding the record; the fsync'd writes
    themselves cannot be timed inside the file they produce."""
    t = time.perf_counter()
    overlay_png = draw_overlay(scored) if overlay and scored.ok else None
    scored.timings_ms["write"] = round((time.perf_counter() - t) * 1000.0, 3)
    rec = make_record(scored, model)
    data = (json.dumps(rec, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if overlay_png is not None:
        write_bytes(overlay_path(scored.path), overlay_png, mode=FILE_MODE)
    out = result_path(scored.path)
    write_bytes(out, data, mode=FILE_MODE)
    return out


def load_result(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A result file's record; None when missing, unreadable or not one of ours."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
        return None
    return rec


def is_done(image: str | os.PathLike[str], fingerprint: str,
            st: os.stat_result | None = None) -> bool:
    """True when `image` has a result for this bundle that matches its current size and mtime."""
    if st is None:
        try:
            st = os.stat(image)
        except OSError:
            return False
    rec = load_result(result_path(image))
    if rec is None or int(rec.get("schema_version", 0)) > SCHEMA_VERSION:
        return False
    img = rec.get("image") or {}
    if (img.get("size_bytes") != st.st_size or img.get("mtime_ns") != st.st_mtime_ns
            or (rec.get("model") or {}).get("fingerprint") != fingerprint):
        return False
    kind = (rec.get("error") or {}).get("kind")
    return not (rec.get("status") == "error" and kind in TRANSIENT_KINDS
                and img.get("ctime_ns") != st.st_ctime_ns)


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
        self._rows: dict[Path, tuple[int, dict[str, Any]]] = {}
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
                rec = load_result(path)
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

    def _render(self, records: list[dict[str, Any]]) -> bytes:
        classes = list(self.classes)
        for rec in records:
            for c in (rec.get("model") or {}).get("classes", []):
                if c not in classes:
                    classes.append(c)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "well", "status", "label", "crystals_hit", "uncertain", *classes,
                    "drop_found", "drop_area_fraction", "error_kind", "fingerprint", "created"])
        for rec in sorted(records, key=lambda r: (r["image"].get("name") or "")):
            name = rec["image"].get("name") or ""
            scores = rec.get("scores") or {}
            drop = rec.get("drop") or {}
            w.writerow([
                name, well_of(name) or "", rec.get("status", ""), rec.get("label") or "",
                _flag(rec.get("crystals_hit")), _flag(rec.get("uncertain")),
                *[_fmt(scores.get(c)) for c in classes],
                "" if not drop else int(bool(drop.get("found"))),
                _fmt(drop.get("area_fraction")),
                (rec.get("error") or {}).get("kind") or "",
                (rec.get("model") or {}).get("fingerprint", ""), rec.get("created", ""),
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


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")
