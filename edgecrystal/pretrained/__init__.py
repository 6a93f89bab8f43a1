"""Models that ship with edgecrystal: a finder trained on domain-randomised synthetic wells, so
that the paper's pipeline works on a user's imager before they have drawn a single mask, and the
default bundle (that finder and a classifier trained on synthetic wells of every style), so that
a new user scores plates with no training at all.

Each shipped model is a bundle folder inside this package (bundle.json, the Keras files, the
ONNX variants). Its bundle.json holds the provenance: the exact command, seed and data that
produced it (scripts/build_default_finder.py and scripts/build_default_classifier.py rebuild
them). numpy-free and TensorFlow-free: the CLI's
`models` command and the runtime may import this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..bundle import BUNDLE_FILE, Bundle
from ..errors import BundleError, UsageError

HERE = Path(__file__).resolve().parent
# name -> folder inside this package
# "crystals": the crystal model (with the shipped finder that crops for it) as a starting point
# for `train crystals --init default`; it is not part of the default bundle (it misses its
# accuracy targets on real photos and has no faithful INT8: docs/training.md).
SHIPPED: dict[str, str] = {"finder": "finder", "bundle": "bundle", "crystals": "crystals"}
# The script that rebuilds each, for the "missing from this installation" message.
_BUILDERS = {"finder": "scripts/build_default_finder.py",
             "bundle": "scripts/build_default_classifier.py",
             "crystals": "the commands in its bundle.json's crystals.provenance"}


def bundle_path(name: str) -> Path:
    """The folder of the shipped bundle `name`, checked to hold a bundle.json."""
    if name not in SHIPPED:
        raise UsageError(f"no shipped model {name!r} (shipped: {', '.join(SHIPPED)})")
    path = HERE / SHIPPED[name]
    if not (path / BUNDLE_FILE).is_file():
        raise BundleError(f"the shipped {name} is missing from this installation ({path}); "
                          f"reinstall edgecrystal or rebuild it with {_BUILDERS[name]}")
    return path


def default_bundle_path() -> Path:
    """The shipped default bundle (finder + classifier, FP32 and INT8 ONNX): what `score` and
    `serve` use when no bundle is given. Read-only: copy it before changing it."""
    return bundle_path("bundle")


def classifier_path() -> Path:
    """The shipped default classifier's Keras file (inside the default bundle): the starting
    point of fine-tuning on a user's labels."""
    return default_bundle_path() / "classifier.keras"


def shipped_classifier() -> Path:
    """The bundle folder of the classifier that ships with edgecrystal (the default bundle:
    `train classifier --init default` fine-tunes it); one line when this installation ships
    none."""
    path = HERE / SHIPPED["bundle"]
    if (path / BUNDLE_FILE).is_file() and Bundle.open(path).has("classifier"):
        return path
    raise BundleError("no classifier ships with this edgecrystal installation: pass --init "
                      "BUNDLE (a bundle with a trained classifier) instead of --init default")


def describe(name: str) -> dict[str, Any]:
    """What `edgecrystal models list` shows: where it is, what it is and how it was made."""
    path = bundle_path(name)
    meta = json.loads((path / BUNDLE_FILE).read_text(encoding="utf-8"))
    section = meta.get(name) or meta.get("classifier", {})
    # The crystal model's bundle holds the shipped finder too: its own provenance is the
    # section's; the top-level one is the finder's (or, in the default bundle, the classifier's).
    provenance = section.get("provenance") or meta.get("provenance", {})
    return {
        "name": name,
        "path": str(path),
        "profile": section.get("profile"),
        "input_size": section.get("input_size"),
        "base_filters": section.get("base_filters"),
        "flops": section.get("flops"),
        "files": {rel: digest[:12] for rel, digest in meta.get("files", {}).items()},
        "command": provenance.get("command"),
        "seed": provenance.get("seed"),
        "data": provenance.get("data"),
        "trained": provenance.get("trained"),
        "training_seconds": provenance.get("training_seconds"),
        "metrics": provenance.get("metrics", {}),
    }


def list_models() -> list[dict[str, Any]]:
    return [describe(name) for name in SHIPPED]


def adopt_finder(bundle: Bundle, source: str | Path | None = None, *, save: bool = True) -> str:
    """Put a finder into `bundle` and save it (unless `save` is False: the caller saves once
    the rest is in): the shipped default (source None) or another bundle's
    (Bundle.adopt_finder does the copying). Returns the source's folder."""
    root = bundle_path("finder") if source is None else Path(source)
    label = "edgecrystal.pretrained/finder" if source is None else None
    bundle.adopt_finder(Bundle.open(root), adopted_from=label)
    if save:
        bundle.save()
    return str(root)
