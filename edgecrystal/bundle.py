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
- `confidence`: {"temperature", "crystals_threshold", "recall_target",
                 "classifier_fp32_sha256", "data", "metrics", ...}           (confidence_fit)
This module never imports TensorFlow or ONNX: the runtime reads bundles through it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DEFAULT_CLASSES, PREPROCESS_VERSION, __version__
from .atomic import write_json
from .confidence import SECTION as CONFIDENCE_SECTION
from .confidence import Confidence, from_section
from .crystal_boxes import CrystalSettings
from .errors import BundleError
from .hashing import sha256_file
from .interface import INPUT_NAME

BUNDLE_FILE = "bundle.json"
FORMAT = "edgecrystal-bundle"
FORMAT_VERSION = 1
MODELS = ("finder", "classifier", "crystals")


@contextlib.contextmanager
def removed_on_failure(path: str | Path) -> Iterator[None]:
    """Delete the bundle folder again when the work inside fails and the folder was new: a
    failed first `train` leaves nothing behind to confuse the next command. A folder holding a
    complete epoch's checkpoint (an interrupted training, continued with --resume) is kept."""
    root = Path(path)
    new = not root.exists()
    try:
        yield
    except BaseException:
        resumable = any((root / "checkpoints").glob("*/state.json"))
        if new and root.is_dir() and not resumable:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _differs(recorded: str | None, current: str | None) -> bool:
    """Both hashes known and different (a record without one cannot be proven stale)."""
    return recorded is not None and current is not None and recorded != current


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
                                  f"`edgecrystal train classifier DATA --bundle {root}`)")
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

    def is_registered(self, rel: str) -> bool:
        return bool(self.registered_sha256(rel))

    def registered_sha256(self, rel: str) -> str | None:
        """The sha256 bundle.json records for file `rel` (None when not registered)."""
        return self.meta.get("files", {}).get(rel)

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

    def onnx_variant(self, model: str, precision: str, backend: str = "onnxruntime",
                     *, check_hash: bool = True) -> Path:
        """The ONNX file of `model` at `precision` meant for `backend`, checked to exist, to be
        made from the bundle's current model (not stale), and (check_hash) to hold the bytes
        bundle.json records: what runs is what the fingerprint names."""
        found = self.variant_for(model, precision, backend)
        if found is not None:
            name, entry = found
            path = self.root / entry["file"]
            if not path.is_file():
                raise BundleError(f"bundle lists {entry['file']} ({name}) but it is missing")
            if self.is_stale(model, name):
                raise self._stale_error(model, entry)
            if check_hash and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                raise BundleError(
                    f"bundle {self.root}: {entry['file']} changed after it was built; run "
                    f"`edgecrystal build-engines {self.root} --force`")
            return path
        variants = self.variants(model)
        have = sorted({e.get("precision", "?") for e in variants.values()})
        hint = (f"it has {', '.join(have)}" if have else "it has none")
        raise BundleError(
            f"bundle {self.root} has no {precision} ONNX {model} for {backend} ({hint}); "
            f"run `edgecrystal build-engines {self.root} --precision {precision}`"
        )

    def adopt_finder(self, other: Bundle, adopted_from: str | None = None) -> None:
        """Use `other`'s trained finder in this bundle: its Keras file and settings (and the
        provenance of a shipped model). This bundle's own finder ONNX variants are dropped, so
        build-engines remakes them from the adopted model instead of scoring with stale ones;
        `other`'s FP32 ONNX comes along when it is current (made from that very Keras file):
        build-engines keeps it, so the finder needs no TensorFlow export here."""
        section = json.loads(json.dumps(other.require("finder")))
        rel = section.get("model", "finder.keras")
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(other.model_file("finder"), self.root / rel)
        section["adopted_from"] = adopted_from or str(other.root.resolve())
        # How the finder was made: its section's own record when it has one (a bundle that
        # adopted it carries it there, and that bundle's top-level provenance is its
        # classifier's), else the source bundle's (the shipped finder's bundle describes it).
        if "provenance" in other.meta and "provenance" not in section:
            section["provenance"] = other.meta["provenance"]
        self.meta["finder"] = section
        self.meta.get("onnx", {}).pop("finder", None)
        self.register_file(rel)
        self._carry_current_fp32(other, "finder")

    def _carry_current_fp32(self, other: Bundle, model: str) -> None:
        entry = other.variant(model, "fp32")
        rel = entry.get("file", "")
        if not rel or other.is_stale(model, "fp32") or not other.path(rel).is_file():
            return
        if sha256_file(other.path(rel)) != entry.get("sha256"):
            return  # damaged or replaced: build-engines exports it again
        self.path(rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(other.path(rel), self.path(rel))
        self.register_file(rel)
        self.meta.setdefault("onnx", {})[model] = {"fp32": json.loads(json.dumps(entry))}

    def set_classes(self, classes: list[str]) -> None:
        self.meta["classes"] = list(dict.fromkeys(classes))

    def set_section(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Replace section `name` (a model's training record) with `values`."""
        self.meta[name] = values
        return values

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

    # ----------------------------------------------------------------- ONNX variants
    def variants(self, model: str) -> dict[str, dict[str, Any]]:
        """bundle.json's ONNX variants of `model` ({"fp32": {...}, "int8": {...}}), maybe empty."""
        return dict(self.meta.get("onnx", {}).get(model, {}))

    def variant(self, model: str, name: str) -> dict[str, Any]:
        """One variant's record (empty when the bundle has none)."""
        return dict(self.meta.get("onnx", {}).get(model, {}).get(name, {}))

    def variant_for(self, model: str, precision: str,
                    backend: str) -> tuple[str, dict[str, Any]] | None:
        """(name, record) of the variant of `model` at `precision` that `backend` runs."""
        for name, entry in self.variants(model).items():
            if entry.get("precision") == precision and backend in entry.get("backends", [backend]):
                return name, entry
        return None

    def add_variant(self, model: str, name: str, *, precision: str, backends: list[str],
                    key: Mapping[str, object], source: Mapping[str, object],
                    **detail: object) -> dict[str, Any]:
        """Record onnx/<model>.<name>.onnx (already written) as a variant made from `source`
        (the record it was converted from): registers and hashes the file, keeps `key` (the
        options that made it, with its source's sha256) for the skip check."""
        rel = f"onnx/{model}.{name}.onnx"
        entry = {"file": rel, "precision": precision, "backends": backends, **key,
                 "sha256": self.register_file(rel), "input": source.get("input", INPUT_NAME),
                 "input_dtype": source.get("input_dtype", "uint8"),
                 "output": source.get("output"), **detail}
        self.section("onnx").setdefault(model, {})[name] = entry
        return entry

    # ----------------------------------------------------------------- INT8 gate per CPU family
    def set_int8_gate(self, model: str, name: str, gate: Mapping[str, object]) -> None:
        """Keep the accuracy gate's record (calibration/gate.py) of INT8 variant `name` for the
        CPU family it was measured on (gate["family"]); other families' records stay."""
        entry = self.section("onnx").get(model, {}).get(name)
        if entry is None:
            raise BundleError(f"bundle {self.root} has no {model} {name} variant to gate")
        entry.setdefault("gate", {})[str(gate["family"])] = dict(gate)

    def int8_gate(self, model: str, name: str, family: str) -> dict[str, Any] | None:
        """The gate's record of `model`'s INT8 variant `name` on CPU `family`, or None where it
        was never checked on that family."""
        gate = self.variant(model, name).get("gate", {}).get(family)
        return dict(gate) if isinstance(gate, dict) else None

    def int8_unusable(self, models: list[str], backend: str,
                      family: str | None = None) -> str | None:
        """One line when the INT8 variant `backend` runs of any of `models` failed the accuracy
        gate on CPU `family` (None: on any family: TensorRT's file, whose CPU measurement stands
        for the file itself, not for a CPU's kernels)."""
        for model in models:
            found = self.variant_for(model, "int8", backend)
            if found is None:
                continue
            name, entry = found
            for checked, gate in sorted(entry.get("gate", {}).items()):
                if family is not None and checked != family:
                    continue
                if not gate.get("usable", True):
                    reasons = "; ".join(gate.get("reasons") or ["outside the bounds"])
                    return (f"{model} {name} failed the INT8 accuracy gate on {checked} "
                            f"({reasons}); use fp32 or fp16, or recalibrate "
                            "(build-engines --calib DATA, --calib-method)")
        return None

    def int8_unchecked(self, models: list[str], family: str) -> str | None:
        """One line when the ONNX Runtime INT8 variant of any of `models` was not checked on CPU
        family `family` (made on another kind of CPU, or before the gate existed)."""
        for model in models:
            found = self.variant_for(model, "int8", "onnxruntime")
            if found is None:
                continue
            name, entry = found
            if self.int8_gate(model, name, family) is None:
                checked = ", ".join(sorted(entry.get("gate", {}))) or "no CPU family"
                return (f"{model} {name} was checked on {checked}, not on this CPU's "
                        f"{family}")
        return None

    def model_sha256(self, model: str) -> str | None:
        """The sha256 of `model`'s current trained model: from the registered Keras file, or,
        in a runtime export without Keras files, the hash the export recorded."""
        rel = self.meta.get(model, {}).get("model", f"{model}.keras")
        return (self.meta.get("files", {}).get(rel)
                or self.meta.get("runtime_export", {}).get("model_sha256", {}).get(model))

    def is_stale(self, model: str, name: str) -> bool:
        """True when variant `name` of `model` was not made from the bundle's current model:
        FP32 from another Keras file, FP16/INT8 from another FP32 (or from a stale one)."""
        fp32 = self.variant(model, "fp32")
        fp32_stale = _differs(fp32.get("sha256_source"), self.model_sha256(model))
        if name == "fp32":
            return fp32_stale
        entry = self.variant(model, name)
        return bool(entry) and (fp32_stale or _differs(entry.get("sha256_source"),
                                                       fp32.get("sha256")))

    def stale_variants(self) -> list[tuple[str, str]]:
        """Every (model, variant) that is stale; empty when all are current."""
        return [(model, name) for model in MODELS for name in self.variants(model)
                if self.is_stale(model, name)]

    def check_precision_current(self, models: list[str], precision: str) -> None:
        """BundleError in one line when a variant of `models` at `precision` is stale: asked
        before any backend is tried, so the refusal is the only line the user sees."""
        for model in models:
            for name, entry in self.variants(model).items():
                if entry.get("precision") == precision and self.is_stale(model, name):
                    raise self._stale_error(model, entry)

    def _stale_error(self, model: str, entry: Mapping[str, object]) -> BundleError:
        return BundleError(
            f"bundle {self.root}: {entry['file']} was made from an older {model} than the "
            f"bundle's current one; run `edgecrystal build-engines {self.root}`")

    def check_current(self) -> None:
        """BundleError in one line when any ONNX variant is stale (verify, export)."""
        stale = self.stale_variants()
        if stale:
            names = ", ".join(f"{m} {v}" for m, v in stale)
            raise BundleError(f"bundle {self.root}: {names} made from an older model than the "
                              f"bundle's current one; run `edgecrystal build-engines {self.root}`")

    # ----------------------------------------------------------------- runtime settings
    def input_size(self, model: str) -> int:
        return int(self.require(model)["input_size"])

    @property
    def crop(self) -> str:
        """How the classifier's input is made: finder, manual (finder at runtime) or none."""
        return str(self.meta.get("classifier", {}).get("crop", "finder"))

    @property
    def threshold(self) -> float:
        return float(self.meta.get("finder", {}).get("threshold", 0.5))

    @property
    def margin(self) -> float:
        return float(self.meta.get("classifier", {}).get("margin", 0.05))

    @property
    def crop_finder_size(self) -> int:
        """The input size of the finder whose decode the crop step reuses (preprocess.crop_drop's
        `finder_size`): the finder's when scoring runs one, else 0."""
        return self.input_size("finder") if "finder" in self.runtime_models() and \
            self.has("finder") else 0

    def confidence(self) -> Confidence:
        """The calibration and crystals threshold scoring applies after the classifier: the
        fitted ones while they were fitted on the current classifier FP32 ONNX, else none."""
        fp32 = self.variant("classifier", "fp32").get("sha256")
        return from_section(self.meta.get(CONFIDENCE_SECTION), fp32)

    def runtime_models(self) -> list[str]:
        """The models scoring runs: the classifier, the finder unless crop is none, and the
        crystal model where the bundle has a `crystals` section (it runs on the crop)."""
        models = ["classifier"] if self.crop == "none" else ["finder", "classifier"]
        return [*models, "crystals"] if self.has("crystals") else models

    def crystal_settings(self) -> CrystalSettings | None:
        """How the crystal model's maps become boxes (None: the bundle has no crystal model)."""
        if not self.has("crystals"):
            return None
        section = self.section("crystals")
        return CrystalSettings.from_section(section, int(section.get("input_size") or 0))

    def runtime_fingerprint(self, backend: str, precision: str) -> str:
        """A short id of what scores an image: the hashes of the model files that run (ONNX
        variant, or Keras file for the keras reference), backend, precision, classes and the
        crop settings. Result files carry it: a change of any of these rescores."""
        runs: dict[str, str | None] = {}
        for model in self.runtime_models():
            if backend == "keras":
                runs[model] = self.model_sha256(model)
                continue
            found = self.variant_for(model, precision,
                                     "tensorrt" if backend == "tensorrt" else "onnxruntime")
            runs[model] = found[1].get("sha256") if found else None
        blob = json.dumps({"runs": runs, "backend": backend, "precision": precision,
                           "classes": self.classes, "crop": self.crop,
                           "threshold": self.threshold, "margin": self.margin,
                           "preprocess": self.preprocess_version,
                           # Only with a crystal model: other bundles keep their fingerprints.
                           **({"crystals": crystals.as_record()}
                              if (crystals := self.crystal_settings()) else {}),
                           # Only when fitted, so unfitted bundles keep their fingerprints.
                           **({"confidence": self.confidence().as_record()}
                              if self.confidence().fitted else {})}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

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
