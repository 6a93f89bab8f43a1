"""The model bundle: one folder that holds everything a deployment needs and says what it is.

    bundle/
      bundle.json        classes, input sizes, preprocessing version, profile, data summary,
                         metrics, ONNX variants, and the sha256 of every file below
      finder.keras  classifier.keras
      onnx/              <model>.<variant>.onnx  (fp32, fp16, int8 Q/DQ ...)
      calibration/       which images calibrated the INT8 models, and the scales/cache
      engines/<gpu>-sm<cc>-trt<version>/   *.plan + engine.json

bundle.json sections (each written by the part of the project that owns it):
- `finder`:     {"model": "finder.keras", "input_size", "base_filters", "depth", "profile",
                 "threshold", "hyperparameters", "data", "metrics"}          (training)
- `classifier`: {"model": "classifier.keras", "input_size", "crop", "margin", "profile",
                 "hyperparameters", "data", "metrics"}                       (training)
- `onnx`:       {"finder"|"classifier": {variant: {"file", "precision", "backends": [...],
                 "opset", "sha256_source", ...}}}                           (converters)
- `calibration`: {"finder"|"classifier": {...}}                             (calibration)
This module never imports TensorFlow or ONNX: the runtime reads bundles through it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DEFAULT_CLASSES, PREPROCESS_VERSION, __version__
from .atomic import write_json
from .errors import BundleError
from .hashing import sha256_file

BUNDLE_FILE = "bundle.json"
FORMAT = "edgecrystal-bundle"
FORMAT_VERSION = 1
MODELS = ("finder", "classifier")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Bundle:
    root: Path
    meta: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- opening and saving
    @classmethod
    def open(cls, path: str | Path, *, create: bool = False,
             classes: tuple[str, ...] | list[str] | None = None) -> Bundle:
        """Open an existing bundle; with create=True, start one in an empty or new folder."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise BundleError(f"bundle path {root} is a file, not a folder")
        meta_path = root / BUNDLE_FILE
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BundleError(f"{meta_path} is not readable JSON: {exc}") from None
            if meta.get("format") != FORMAT:
                raise BundleError(f"{meta_path} is not an edgecrystal bundle description")
            if int(meta.get("format_version", 0)) > FORMAT_VERSION:
                raise BundleError(
                    f"{root} was written by a newer edgecrystal (bundle format "
                    f"{meta.get('format_version')}); upgrade edgecrystal to use it"
                )
            return cls(root, meta)
        if not create:
            if not root.exists():
                raise BundleError(f"bundle {root} does not exist (train one with "
                                  "`edgecrystal train finder DATA --bundle {root}`)")
            raise BundleError(f"{root} has no {BUNDLE_FILE}: not a model bundle")
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _now(),
            "edgecrystal_version": __version__,
            "preprocess_version": PREPROCESS_VERSION,
            "classes": list(classes or DEFAULT_CLASSES),
            "files": {},
        }
        return cls(root, meta)

    def save(self) -> None:
        """Re-hash every registered file that still exists and write bundle.json atomically."""
        files = {rel: sha256_file(self.root / rel)
                 for rel in sorted(self.meta.get("files", {})) if (self.root / rel).is_file()}
        self.meta["files"] = files
        self.meta["updated"] = _now()
        self.meta["edgecrystal_version"] = __version__
        write_json(self.root / BUNDLE_FILE, self.meta)

    # ----------------------------------------------------------------- contents
    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", DEFAULT_CLASSES))

    @property
    def preprocess_version(self) -> str:
        return str(self.meta.get("preprocess_version", ""))

    def section(self, name: str) -> dict[str, Any]:
        """A section of bundle.json, created empty when absent (callers fill it in)."""
        return self.meta.setdefault(name, {})

    def has(self, name: str) -> bool:
        return bool(self.meta.get(name))

    def require(self, name: str) -> dict[str, Any]:
        sec = self.meta.get(name)
        if not sec:
            raise BundleError(f"bundle {self.root} has no {name} (train it first)")
        return sec

    def path(self, rel: str) -> Path:
        return self.root / rel

    def register_file(self, rel: str) -> str:
        """Record a file (relative to the root) so save() hashes it; returns its sha256."""
        digest = sha256_file(self.root / rel)
        self.meta.setdefault("files", {})[rel] = digest
        return digest

    def is_imported(self, model: str) -> bool:
        """True when `model` came from `edgecrystal import` (ONNX only, no Keras file)."""
        return bool(self.meta.get(model, {}).get("imported"))

    def model_file(self, model: str) -> Path:
        """The Keras file of `model` ("finder" or "classifier"), checked to exist."""
        if self.is_imported(model):
            fmt = self.meta[model]["imported"].get("format", "another framework")
            raise BundleError(f"the {model} of bundle {self.root} was imported from {fmt}: it "
                              "has no Keras model (its reference is the ONNX FP32)")
        rel = self.require(model).get("model", f"{model}.keras")
        path = self.root / rel
        if not path.is_file():
            raise BundleError(f"bundle {self.root} lists {rel} but the file is missing")
        return path

    def onnx_variant(self, model: str, precision: str, backend: str = "onnxruntime") -> Path:
        """The ONNX file of `model` at `precision` meant for `backend`, checked to exist."""
        variants = self.meta.get("onnx", {}).get(model, {})
        for name, entry in variants.items():
            if entry.get("precision") == precision and backend in entry.get("backends", [backend]):
                path = self.root / entry["file"]
                if not path.is_file():
                    raise BundleError(f"bundle lists {entry['file']} ({name}) but it is missing")
                return path
        have = sorted({e.get("precision", "?") for e in variants.values()})
        hint = (f"it has {', '.join(have)}" if have else "it has none")
        raise BundleError(
            f"bundle {self.root} has no {precision} ONNX {model} for {backend} ({hint}); "
            f"run `edgecrystal build-engines {self.root} --precision {precision}`"
        )

    def check_preprocess(self) -> None:
        if self.preprocess_version != PREPROCESS_VERSION:
            raise BundleError(
                f"bundle {self.root} was made with preprocessing version "
                f"{self.preprocess_version or '?'}, this edgecrystal uses {PREPROCESS_VERSION}; "
                "retrain or use a matching edgecrystal"
            )

    def verify_files(self) -> list[str]:
        """Registered files whose content no longer matches bundle.json (empty when intact)."""
        bad = []
        for rel, digest in self.meta.get("files", {}).items():
            path = self.root / rel
            if not path.is_file() or sha256_file(path) != digest:
                bad.append(rel)
        return bad

    @property
    def fingerprint(self) -> str:
        """A short content id: changes whenever any model file of the bundle changes."""
        blob = json.dumps(
            {"files": self.meta.get("files", {}), "classes": self.classes,
             "finder": self.meta.get("finder", {}).get("threshold"),
             "classifier": self.meta.get("classifier", {}).get("crop")},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
