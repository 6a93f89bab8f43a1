"""The daemon's TOML config: every key, its default and what it does (docs/daemon.md repeats
this table; systemd/edgecrystal.toml is a commented example). Unknown keys are refused, so a
typo never silently falls back to a default."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UsageError, path_problem
from ..imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Config:
    # The model bundle folder; relative paths are relative to the config file. Unset: the
    # shipped default bundle (edgecrystal models path bundle).
    bundle: str = ""
    # Folders to watch. Images appear anywhere below them (with `recursive`).
    watch: tuple[str, ...] = ()
    # Descend into subfolders (plates usually get one folder each).
    recursive: bool = True
    # File name endings that are images (case-insensitive).
    extensions: tuple[str, ...] = IMAGE_SUFFIXES
    # Full rescan of the watched folders every this many seconds: catches what inotify cannot
    # see (network shares, NFS/SMB mounts, events lost when the kernel queue overflows).
    rescan_interval_s: float = 60.0
    # A file is complete when its size and mtime have not changed for this long ...
    settle_ms: int = 2000
    # ... or at once when inotify reports it closed after writing (IN_CLOSE_WRITE) and it has
    # not changed since. Turn off for writers that close and reopen a file while writing it.
    trust_close_write: bool = True
    # Images per inference batch.
    batch_size: int = 8
    # How long a complete image may wait for others to fill a batch.
    max_batch_wait_ms: int = 200
    # auto | onnxruntime | tensorrt (auto: TensorRT where an engine for this GPU exists or can
    # be built, else ONNX Runtime on the CPU).
    backend: str = "auto"
    # fp32 | fp16 | int8 | auto: which ONNX variant / engine of the bundle to run. auto: int8
    # where it passed the accuracy gate on this CPU family and times faster than fp32 here at
    # start (edgecrystal/runtime/advice.py), else fp32; the choice and its reason are logged.
    precision: str = "fp32"
    # ONNX Runtime intra-op threads (0: automatic). Leave cores for the imager's own software.
    threads: int = 0
    # ONNX Runtime execution providers in order of preference: cpu, cuda, tensorrt.
    providers: tuple[str, ...] = ("cpu",)
    # Threads decoding images (decoding releases the GIL).
    read_threads: int = 2
    # Batches each overlap stage may hold (decoded ahead, waiting to be written): decoding the
    # next batch, inference and writing the last run at once; memory grows with this, never with
    # the number of images waiting.
    queue_depth: int = 1
    # Allow building TensorRT engines from the bundle's ONNX when none matches this GPU.
    build_engines: bool = True
    # Models on a DLA core instead of the GPU (Orin NX / AGX Orin; fp16 or int8), as a TOML
    # table: dla_core = { finder = 0 } runs the finder on DLA core 0, the classifier on the GPU.
    dla_core: tuple[tuple[str, int], ...] = ()
    # Also write IMAGE.edgecrystal.png (drop outline, label and score).
    overlay: bool = False
    # Keep edgecrystal-summary.csv up to date in every folder that gets results.
    summary: bool = True
    # Rewrite summaries at most this often while images keep arriving (always when idle).
    summary_interval_s: float = 10.0
    # Refuse images with more pixels than this, from the header, before decoding.
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Ignore images whose mtime is older than this many days (0: no limit). Keeps a new bundle
    # from rescoring years of archive, and startup scans short.
    ignore_older_than_days: float = 0.0
    # Transient failures (a result that cannot be written, an inference error) are retried
    # this many times, waiting retry_backoff_s, then twice that, ... up to retry_max_backoff_s.
    retry_max: int = 5
    retry_backoff_s: float = 2.0
    retry_max_backoff_s: float = 300.0
    # The results index (docs/review.md): "default" (results.db in the systemd state directory,
    # else ~/.local/state/edgecrystal; off without the `index` extra), "off", sqlite:///FILE or
    # postgresql://USER@HOST/DB. The index never holds the daemon back.
    index: str = "default"
    # Your imager's file names, tried before the built-in layouts: regexes with named groups
    # plate, well (or row and column), drop, inspection, date, time.
    name_patterns: tuple[str, ...] = ()
    # Columns of Formulatrix Rock Maker plates (12: 96 wells; 24: 384) for wellNum -> well.
    rock_maker_columns: int = 12
    # debug | info | warning | error
    log_level: str = "info"
    # Where this config came from (not a key).
    source: str = field(default="", compare=False)

    def roots(self) -> list[Path]:
        return [Path(w) for w in self.watch]


KEYS = [f.name for f in fields(Config) if f.name != "source"]


def load_config(path: str | os.PathLike[str] | None,
                overrides: Mapping[str, object] | None = None) -> Config:
    """Read and check a config file (or only `overrides` when path is None)."""
    raw: dict[str, object] = {}  # TOML's values: checked against each field's type below
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from None
        try:
            raw = _toml().loads(text)
        except ValueError as exc:
            raise UsageError(f"config {path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
    raw.update(overrides or {})
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise UsageError(f"config: unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(KEYS)})")
    cfg = Config(source=str(path or "command line"))
    values: dict[str, Any] = {}
    for f in fields(Config):
        if f.name not in raw:
            continue
        values[f.name] = _coerce(f.name, raw[f.name], getattr(cfg, f.name))
    cfg = replace(cfg, **values)
    if not cfg.bundle:
        from ..pretrained import default_bundle_path

        cfg = replace(cfg, bundle=str(default_bundle_path()))
    if not cfg.watch:
        raise UsageError("config: `watch` is empty (folders to watch)")
    cfg = replace(
        cfg,
        bundle=str((base / os.path.expanduser(cfg.bundle)).resolve()),
        watch=tuple(str((base / os.path.expanduser(w)).resolve()) for w in cfg.watch),
        extensions=tuple(e.lower() if e.startswith(".") else f".{e.lower()}"
                         for e in cfg.extensions),
    )
    _check(cfg)
    return cfg


def _check(cfg: Config) -> None:
    from ..interface import BACKEND_CHOICES, PRECISIONS

    problems = []
    if cfg.backend not in BACKEND_CHOICES:
        problems.append(f"backend must be one of {', '.join(BACKEND_CHOICES)}")
    if cfg.precision not in (*PRECISIONS, "auto"):
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} or auto")
    if cfg.log_level not in LOG_LEVELS:
        problems.append(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    for name in ("batch_size", "max_pixels", "read_threads", "queue_depth"):
        if getattr(cfg, name) < 1:
            problems.append(f"{name} must be at least 1")
    for name in ("settle_ms", "max_batch_wait_ms", "threads", "retry_max", "retry_backoff_s",
                 "ignore_older_than_days", "summary_interval_s"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name} must not be negative")
    if cfg.rescan_interval_s <= 0:
        problems.append("rescan_interval_s must be positive")
    for w in cfg.watch:
        if (problem := path_problem(w, "folder")) is not None:
            problems.append(f"watch folder {w} {problem}")
    if (problem := path_problem(cfg.bundle, "folder")) is not None:
        problems.append(f"bundle {cfg.bundle} {problem}")
    try:
        from ..naming import NameReader

        NameReader(cfg.name_patterns, cfg.rock_maker_columns)
    except UsageError as exc:
        problems.append(str(exc))
    if problems:
        raise UsageError(f"config {cfg.source}: " + "; ".join(problems))


def _coerce(name: str, value: object, default: object) -> object:
    if name == "dla_core":
        return _dla_cores(value)
    kind = type(default)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"config: {name} must be a list of strings")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"config: {name} must be true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"config: {name} must be a number")
        if kind is int and value != int(value):
            raise UsageError(f"config: {name} must be a whole number")
        return int(value) if kind is int else float(value)
    if not isinstance(value, str):
        raise UsageError(f"config: {name} must be a string")
    return value


def _dla_cores(value: object) -> tuple[tuple[str, int], ...]:
    models = ("finder", "classifier", "crystals")
    if not isinstance(value, dict) or any(
            m not in models or isinstance(c, bool) or not isinstance(c, int) or c < 0
            for m, c in value.items()):
        raise UsageError("config: dla_core must be a table of model = DLA core, e.g. "
                         "dla_core = { finder = 0 } (models: finder, classifier, crystals; "
                         "cores 0, 1)")
    return tuple(sorted(value.items()))


def _toml() -> ModuleType:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 (JetPack 6)
        import tomli as tomllib
    return tomllib
