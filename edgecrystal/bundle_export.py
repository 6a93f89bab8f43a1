"""`edgecrystal bundle export B OUT --runtime`: the part of a bundle a deployment runs.

Scoring needs bundle.json and the ONNX variants; checkpoints, logs and Keras files (most of a
trained bundle's size) stay behind. Every copied file is hashed again after the copy and must
match bundle.json, so a deployment never starts from a half-copied or changed model.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

from .atomic import write_json
from .bundle import BUNDLE_FILE, MODELS, Bundle
from .errors import BundleError, UsageError
from .hashing import sha256_file

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "int8")


def export_runtime(source: Path, out: Path,
                   precisions: tuple[str, ...] = PRECISIONS) -> dict[str, Any]:
    """Copy what scoring at `precisions` needs from bundle `source` into the new folder `out`;
    returns {"files": [...], "bytes": n}. Refuses stale or damaged variants."""
    for precision in precisions:
        if precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)} or all "
                             f"(got {precision})")
    bundle = Bundle.open(source)
    bundle.check_preprocess()
    bundle.check_current()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder; choose a new one")
    chosen = _chosen_variants(bundle, precisions)
    meta = copy.deepcopy(bundle.meta)
    meta["onnx"] = {model: {name: bundle.variant(model, name) for name in names}
                    for model, names in chosen.items()}
    files = [entry["file"] for variants in meta["onnx"].values() for entry in variants.values()]
    meta["files"] = {rel: bundle.registered_sha256(rel) for rel in files}
    # The hashes the variants were made from, so staleness stays checkable without the Keras.
    meta["runtime_export"] = {
        "from": str(bundle.root.resolve()), "precisions": list(precisions),
        "model_sha256": {m: bundle.model_sha256(m) for m in chosen}}
    meta.pop("calibration", None)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        for rel in files:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle.path(rel), target)
            if sha256_file(target) != meta["files"][rel]:
                raise BundleError(f"{rel} does not match its hash in {source}/{BUNDLE_FILE} "
                                  "(changed after build-engines?): not exported")
            total += target.stat().st_size
        write_json(out / BUNDLE_FILE, meta)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    log.info("exported %d files (%d bytes) to %s", len(files), total, out)
    return {"files": [BUNDLE_FILE, *files], "bytes": total}


def _chosen_variants(bundle: Bundle, precisions: tuple[str, ...]) -> dict[str, list[str]]:
    """{model: [variant names]} that scoring at `precisions` can use (ONNX Runtime and
    TensorRT alike); BundleError naming what is missing."""
    chosen: dict[str, list[str]] = {}
    for model in [m for m in MODELS if m in bundle.runtime_models() and bundle.has(m)]:
        names = [name for name, entry in bundle.variants(model).items()
                 if entry.get("precision") in precisions]
        have = {bundle.variant(model, n).get("precision") for n in names}
        missing = [p for p in precisions if p not in have]
        if missing:
            raise BundleError(f"bundle {bundle.root} has no {', '.join(missing)} {model}; run "
                              f"`edgecrystal build-engines {bundle.root} --precision "
                              f"{missing[0]}` first")
        chosen[model] = names
    return chosen
