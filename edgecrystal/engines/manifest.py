"""engine.json: how a folder of TensorRT engines was built, and whether this machine can load it.

Engines are specific to a GPU model (compute capability) and a TensorRT version, so they live in
engines/<gpu-slug>-sm<major><minor>-trt<version>/ beside an engine.json that says so. Engines
built with hardware compatibility (AMPERE_PLUS: any sm >= 8.0 GPU, same TensorRT) are not tied to
one GPU, so they live in engines/ampere-plus-trt<version>/, where every Ampere-or-newer GPU
looks after its own folder. The runtime calls `device_identity()` and `check_manifest()` before
it deserializes anything: a mismatch is a plain sentence, never a crash deep inside TensorRT. No
heavy imports at module level (the daemon imports this); tensorrt and the CUDA binding load
inside device_identity().
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Protocol, TypedDict

from edgecrystal.errors import BackendError

from .device import DeviceIdentity, device_identity
from .dla import Placement
from .versions import is_jetson

MANIFEST = "engine.json"
FORMAT = "edgecrystal-engines"
FORMAT_VERSION = 1
ENGINES_DIR = "engines"
# TensorRT's AMPERE_PLUS hardware-compatibility level: engines run on any sm >= 8.0.
AMPERE_PLUS_MIN_SM = (8, 0)


class EngineBundle(Protocol):
    """What the engines read of an edgecrystal.bundle.Bundle (a layer above them)."""

    root: Path

    def onnx_variant(self, model: str, precision: str, backend: str = "onnxruntime", *,
                     check_hash: bool = True) -> Path: ...


class EngineGate(TypedDict, total=False):
    """runtime.engine_gate's verdict on a freshly built INT8 engine against the FP32 one."""

    images: int
    reference: str  # the FP32 .plan's file name
    max_abs_diff: float
    top1_agreement: float
    min_agreement: float
    passed: bool


class EngineEntry(TypedDict, total=False):
    """One engine of engine.json (read back from JSON: any key may be missing)."""

    model: str
    precision: str
    file: str  # the .plan, beside engine.json
    source: str  # the ONNX, relative to the bundle
    sha256_source: str
    sha256: str
    profile: dict[str, list[int]]
    input_dtype: str
    options: dict[str, object]  # BuildOptions.as_dict()
    built: str
    build_seconds: float
    build: dict[str, object]  # strongly_typed, builder_flags
    device: str  # "gpu" | "dla0"...
    placement: Placement
    gate: EngineGate


class EngineManifest(DeviceIdentity, total=False):
    """engine.json: the identity the engines were built for, and the engines."""

    format: str
    format_version: int
    hardware_compatibility: str  # "none" | "ampere+"
    engines: dict[str, EngineEntry]


def engine_key(model: str, precision: str, dla_core: int | None = None) -> str:
    """'finder.fp16' for the GPU, 'finder.fp16.dla0' for DLA core 0: the manifest key and the
    .plan file's stem, so one folder holds a model's GPU and DLA engines side by side."""
    key = f"{model}.{precision}"
    return key if dla_core is None else f"{key}.dla{dla_core}"


def slug(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'geforce-rtx-4090'; 'Orin (nvgpu)' -> 'orin-nvgpu'."""
    text = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I).lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "gpu"


def folder_name(identity: DeviceIdentity, hardware_compat: bool = False) -> str:
    if hardware_compat:
        return f"ampere-plus-trt{identity['tensorrt']}"
    major, minor = _cc(identity["compute_capability"])
    return f"{slug(identity['gpu'])}-sm{major}{minor}-trt{identity['tensorrt']}"


def engines_folder(bundle_root: Path, identity: DeviceIdentity,
                   hardware_compat: bool = False) -> Path:
    return Path(bundle_root) / ENGINES_DIR / folder_name(identity, hardware_compat)


def candidate_folders(bundle_root: Path, identity: DeviceIdentity) -> list[Path]:
    """Where this machine looks for engines, best first: the folder built on this very GPU,
    then (on Ampere or newer) the hardware-compatible folder of this TensorRT version."""
    folders = [engines_folder(bundle_root, identity)]
    if hardware_compat_problem(identity) is None:
        folders.append(engines_folder(bundle_root, identity, hardware_compat=True))
    return folders


def hardware_compat_problem(identity: DeviceIdentity) -> str | None:
    """None when `identity`'s GPU can build and run AMPERE_PLUS engines; otherwise why not.
    NVIDIA documents hardware compatibility for Ampere-and-newer desktop GPUs, not for JetPack:
    an Orin (sm87) neither builds nor loads them."""
    if is_jetson(str(identity.get("compute_capability", ""))):
        return (f"hardware-compatible engines are not supported on Jetson (JetPack); this is "
                f"{describe(identity)}: build the engines on the board itself")
    if _cc(identity.get("compute_capability", "0.0")) < AMPERE_PLUS_MIN_SM:
        return (f"hardware-compatible (Ampere+) engines need an Ampere or newer GPU (sm80+); "
                f"this is {describe(identity)}")
    return None


def _cc(value: str) -> tuple[int, int]:
    major, _, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def new_manifest(identity: DeviceIdentity, hardware_compat: bool = False) -> EngineManifest:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **identity,
            "hardware_compatibility": "ampere+" if hardware_compat else "none", "engines": {}}


def engine_entry(*, model: str, precision: str, plan: str, source: str, sha256_source: str,
                 sha256: str, profile: dict[str, list[int]], input_dtype: str,
                 options: dict[str, object], build_seconds: float) -> EngineEntry:
    return {"model": model, "precision": precision, "file": plan, "source": source,
            "sha256_source": sha256_source, "sha256": sha256, "profile": profile,
            "input_dtype": input_dtype, "options": options,
            "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(build_seconds, 2)}


def read_manifest(folder: Path) -> EngineManifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BackendError(f"{folder} has no {MANIFEST}: not an edgecrystal engine folder "
                           "(rebuild with `edgecrystal build-engines`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} is not readable JSON: {exc}") from None
    if data.get("format") != FORMAT:
        raise BackendError(f"{path} is not an edgecrystal engine manifest")
    return data


def write_manifest(folder: Path, manifest: EngineManifest) -> None:
    from edgecrystal.atomic import write_json

    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json(Path(folder) / MANIFEST, manifest)


def describe(identity: DeviceIdentity) -> str:
    major, minor = _cc(identity.get("compute_capability", "0.0"))
    return f"{identity.get('gpu', '?')} (sm{major}{minor}) with TensorRT {identity.get('tensorrt')}"


def check_manifest(manifest: EngineManifest, identity: DeviceIdentity | None) -> str | None:
    """None when engines of `manifest` can load on `identity`; otherwise the reason, one line."""
    if identity is None:
        return "this machine has no NVIDIA GPU with TensorRT"
    built = describe(manifest)
    here = describe(identity)
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        return "the engine manifest was written by a newer edgecrystal"
    # A serialized engine is tied to the exact TensorRT version (no version-compatible builds).
    if str(manifest.get("tensorrt")) != str(identity.get("tensorrt")):
        return f"engines were built for {built}, this machine has {here} (TensorRT differs)"
    want, have = _cc(manifest.get("compute_capability", "0.0")), _cc(
        identity["compute_capability"])
    if manifest.get("hardware_compatibility") == "ampere+":
        # AMPERE_PLUS: any sm >= 8.0 desktop GPU runs it; the building GPU does not matter.
        if have < AMPERE_PLUS_MIN_SM:
            return f"engines were built for Ampere or newer GPUs, this machine has {here}"
        return hardware_compat_problem(identity)
    if want != have:
        return f"engines were built for {built}, this machine has {here} (GPU differs)"
    if slug(str(manifest.get("gpu", ""))) != slug(str(identity.get("gpu", ""))):
        return f"engines were built for {built}, this machine has {here} (GPU model differs)"
    return None


def check_engine(manifest: EngineManifest, key: str, onnx_sha256: str | None = None) -> str | None:
    """None when engine `key` ("finder.fp16") is listed, present and (when `onnx_sha256` is
    given) built from that ONNX; otherwise the reason."""
    entry = manifest.get("engines", {}).get(key)
    if entry is None:
        return f"no {key} engine was built for this device"
    if onnx_sha256 is not None and entry.get("sha256_source") != onnx_sha256:
        return f"the {key} engine was built from another version of {entry.get('source')}"
    return None


def find_engine(bundle: EngineBundle, model: str, precision: str,
                identity: DeviceIdentity | None = None, dla_core: int | None = None) -> Path | str:
    """The .plan of `model` at `precision` (on DLA core `dla_core`, else the GPU) that this
    machine can load, or the reason (one line) why there is none. Looks in this GPU's folder,
    then in the hardware-compatible one. `bundle` is an edgecrystal.bundle.Bundle."""
    identity = device_identity() if identity is None else identity
    if identity is None:
        return "this machine has no NVIDIA GPU with TensorRT"
    reasons = []
    for folder in candidate_folders(bundle.root, identity):
        if not (folder / MANIFEST).is_file():
            continue
        found = _engine_in(folder, bundle, engine_key(model, precision, dla_core), identity)
        if isinstance(found, Path):
            return found
        reasons.append(f"{folder.name}: {found}")
    if reasons:
        return "; ".join(reasons)
    others = sorted(p.name for p in (Path(bundle.root) / ENGINES_DIR).glob("*")
                    if (p / MANIFEST).is_file())
    seen = f" (engines exist for {', '.join(others)})" if others else ""
    return f"no engines were built for {describe(identity)}{seen}"


def entry_for(plan: Path) -> dict[str, Any]:
    """The engine.json entry of a .plan file ({} where its folder's manifest does not list it)."""
    try:
        data = read_manifest(Path(plan).parent)
    except BackendError:
        return {}
    for entry in data.get("engines", {}).values():
        if entry.get("file") == Path(plan).name:
            return dict(entry)
    return {}


def _engine_in(folder: Path, bundle: EngineBundle, key: str,
               identity: DeviceIdentity) -> Path | str:
    from edgecrystal.hashing import sha256_file

    try:
        data = read_manifest(folder)
    except BackendError as exc:
        return str(exc)
    reason = check_manifest(data, identity)
    if reason:
        return reason
    entry = data.get("engines", {}).get(key)
    source = None
    if entry is not None and (Path(bundle.root) / entry.get("source", "")).is_file():
        source = sha256_file(Path(bundle.root) / entry["source"])
    reason = check_engine(data, key, source)
    if reason:
        return reason
    assert entry is not None  # check_engine gave a reason for a missing entry
    plan = folder / entry["file"]
    if not plan.is_file():
        return f"engine.json lists {entry['file']} but the file is missing"
    return plan
