"""Finding, keeping and rebuilding a bundle's engines for this machine.

`engine_for` is the one routine: the engine of `model` at `precision`, from the bundle's ONNX,
into engines/<device>/ (or engines/ampere-plus-trt<version>/ for hardware-compatible builds),
recorded in engine.json. It keeps an engine whose manifest matches this machine and whose entry
matches the ONNX's sha256 and the build options, rebuilds otherwise, and with `force` always.
The runtime calls `build_engine` when no engine matches; `edgecrystal build-engines` calls
`engine_for` for every model and precision. A DLA engine (BuildOptions.dla_core) sits beside the
GPU one under its own key (manifest.engine_key: finder.fp16.dla0). Every build reports its
progress (engines.progress) to the `progress` callable: build-engines prints it, the daemon
logs it and sends it to systemd as STATUS=.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edgecrystal.errors import BackendError, UsageError

from . import dla, manifest
from .device import DeviceIdentity
from .manifest import EngineBundle, EngineGate
from .progress import Report, watched
from .trt_build import BuildOptions, build_plan

log = logging.getLogger(__name__)


def build_engine(bundle: EngineBundle, model: str, precision: str, onnx_path: Path | None = None,
                 options: BuildOptions | None = None, progress: Report | None = None) -> Path:
    """Build (or reuse) the engine of `model` at `precision` for this machine; the .plan path.
    What the runtime calls when no matching engine exists."""
    return engine_for(bundle, model, precision, onnx_path, options, progress=progress)


def engine_for(bundle: EngineBundle, model: str, precision: str, onnx_path: Path | None = None,
               options: BuildOptions | None = None, identity: DeviceIdentity | None = None,
               force: bool = False, progress: Report | None = None,
               gate: Callable[[Path], EngineGate] | None = None) -> Path:
    """Build (or keep) <engines folder>/<key>.plan; update engine.json.
    `gate` (runtime.engine_gate.engine_gate: INT8 against FP32 on held-out images) runs on a
    freshly built plan and its answer is recorded as the entry's "gate".
    `bundle` is an edgecrystal.bundle.Bundle."""
    options = options or BuildOptions(precision=precision)
    try:
        return _engine_for(bundle, model, precision, onnx_path, options, identity, force,
                           progress, gate)
    finally:
        # A kept engine never reaches build_plan: free the calibrator's GPU memory here too.
        close = getattr(options.legacy_int8_calibrator, "close", None)
        if close is not None:
            close()


def _engine_for(bundle: EngineBundle, model: str, precision: str, onnx_path: Path | None,
                options: BuildOptions, identity: DeviceIdentity | None,
                force: bool, progress: Report | None,
                gate: Callable[[Path], EngineGate] | None) -> Path:
    from edgecrystal.hashing import sha256_file

    identity = identity or manifest.device_identity()
    if identity is None:
        raise BackendError("engines need an NVIDIA GPU with TensorRT")
    if options.hardware_compat:
        problem = manifest.hardware_compat_problem(identity)
        if problem:
            raise UsageError(f"--hardware-compat: {problem}")
    # Keyed on the file's own bytes (the manifest records their hash): building tools may
    # hand over an ONNX file bundle.json has not caught up with; serving checks it (select).
    onnx_path = onnx_path or bundle.onnx_variant(model, precision, "tensorrt", check_hash=False)
    folder = manifest.engines_folder(bundle.root, identity, options.hardware_compat)
    wanted_compat = "ampere+" if options.hardware_compat else "none"
    data = manifest.new_manifest(identity, options.hardware_compat)
    kept_compat = wanted_compat
    if (folder / manifest.MANIFEST).is_file():
        existing = manifest.read_manifest(folder)
        reason = manifest.check_manifest(existing, identity)
        if reason and not force:
            raise BackendError(f"{folder}: {reason}; remove the folder or rebuild with --force")
        if not reason:
            data["engines"] = existing.get("engines", {})
            kept_compat = existing.get("hardware_compatibility", "none")
    if kept_compat != wanted_compat:
        # A folder's engines all share one compatibility level: a different one starts afresh.
        log.info("%s was built with hardware compatibility %s, %s is wanted: rebuilding it",
                 folder.name, kept_compat, wanted_compat)
        data["engines"] = {}
    key = manifest.engine_key(model, precision, options.dla_core)
    source_sha = sha256_file(onnx_path)
    wanted = options.as_dict()
    entry = data["engines"].get(key)
    plan = folder / f"{key}.plan"
    if (not force and entry and entry.get("sha256_source") == source_sha
            and entry.get("options") == wanted and plan.is_file()):
        return plan
    what = (f"{model} {precision} engine for {dla.device_name(options.dla_core)} "
            f"(TensorRT {identity.get('tensorrt')})")
    with watched(what, progress):
        facts = build_plan(onnx_path, plan, options, timing_cache=folder / "timing.cache")
    data["engines"][key] = manifest.engine_entry(
        model=model, precision=precision, plan=plan.name,
        source=str(Path(onnx_path).relative_to(bundle.root)), sha256_source=source_sha,
        sha256=sha256_file(plan), profile=facts["profile"], input_dtype=facts["input_dtype"],
        options=wanted, build_seconds=facts["build_seconds"])
    data["engines"][key]["build"] = {"strongly_typed": facts["strongly_typed"],
                                     "builder_flags": facts["builder_flags"]}
    data["engines"][key]["device"] = dla.device_name(options.dla_core)
    placement = facts["placement"]
    if placement:
        data["engines"][key]["placement"] = placement
    if gate is not None:
        data["engines"][key]["gate"] = gate(plan)
    manifest.write_manifest(folder, data)
    return plan
