"""What `build-engines` does with a bundle file whose bytes no longer match bundle.json.

`Bundle.save()` hashes every registered file as it finds it, so a file truncated or changed
since the last build would have its damage written into bundle.json as the truth, `bundle
export` would pass it, and only the imager would refuse it. So before building, every
registered file is checked against its recorded hash:

- a file build-engines makes (an FP16/INT8 variant, a calibration record or range cache, the FP32
  export of a Keras model) is rebuilt: it is removed from the build's copy and its precision
  rebuilt, whatever `--precision` asks for;
- anything else (a Keras model, an imported model's ONNX, which nothing here can make again) is
  refused in one line naming it.
"""

from __future__ import annotations

from edgecrystal.bundle import MODELS, Bundle
from edgecrystal.errors import BundleError

PRECISION_OF = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8-u8": "int8"}
CALIB_DIR = "calibration"


def rebuildable_files(bundle: Bundle) -> dict[str, str]:
    """{file: the precision whose build makes it} for every file build-engines writes."""
    made: dict[str, str] = {}
    for model in MODELS:
        for name, entry in bundle.variants(model).items():
            if name == "fp32" and not _exported_here(bundle, model):
                continue  # an imported model's FP32 ONNX is its source
            if entry.get("file") and name in PRECISION_OF:
                made[entry["file"]] = PRECISION_OF[name]
    for rel in bundle.meta.get("files", {}):
        if rel.startswith(f"{CALIB_DIR}/"):
            made[rel] = "int8"
    return made


def damaged_files(bundle: Bundle) -> dict[str, str]:
    """{damaged file: precision to rebuild} for registered files whose bytes no longer match
    bundle.json; BundleError naming the first damaged file that cannot be rebuilt."""
    bad = bundle.verify_files()
    rebuildable = rebuildable_files(bundle)
    sources = [rel for rel in bad if rel not in rebuildable]
    if sources:
        what = "missing" if not bundle.path(sources[0]).is_file() else (
            "no longer matches the sha256 bundle.json records for it (truncated or changed "
            "since)")
        more = f" (and {len(sources) - 1} more)" if len(sources) > 1 else ""
        raise BundleError(f"{bundle.root / sources[0]} is {what}{more}: build-engines cannot "
                          "make it again and never re-hashes a changed file; restore it, or "
                          "train or import the model again")
    return {rel: rebuildable[rel] for rel in bad}


def _exported_here(bundle: Bundle, model: str) -> bool:
    """The FP32 ONNX is build-engines' own export of a Keras file that is there to export."""
    if bundle.is_imported(model) or not bundle.has(model):
        return False
    rel = bundle.section(model).get("model", f"{model}.keras")
    return bundle.path(rel).is_file()
