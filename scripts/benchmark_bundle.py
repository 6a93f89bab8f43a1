#!/usr/bin/env python3
"""One step of building an untrained bundle of a training profile, for scripts/benchmark.py.

    python scripts/benchmark_bundle.py keras PROFILE ROOT    # Keras files and bundle.json
    python scripts/benchmark_bundle.py export ROOT MODEL     # that model's ONNX FP32

benchmark.py runs each step in its own process, then `edgecrystal build-engines` for FP16 and
INT8: exporting the paper profile's two models (U-Net 512 px base 64, Inception-V3 299 px) in
one TensorFlow process needed more than 12 GB and was killed on a shared 24 GB machine; one
model per process lets each export's memory go back before the next.
"""

from __future__ import annotations

import sys
from pathlib import Path


def build_keras(profile: str, root: Path) -> None:
    """The profile's architectures with seeded untrained weights, saved into a new bundle."""
    from edgecrystal import DEFAULT_CLASSES
    from edgecrystal.bundle import Bundle
    from edgecrystal.models import _keras, build_classifier, build_finder, count_flops
    from edgecrystal.train.profiles import resolve

    finder_hp, classifier_hp = resolve("finder", profile), resolve("classifier", profile)
    _keras().utils.set_random_seed(0)
    bundle = Bundle.open(root, create=True, classes=DEFAULT_CLASSES)
    finder = build_finder(finder_hp.input_size, finder_hp.base_filters, finder_hp.depth)
    classifier = build_classifier(len(DEFAULT_CLASSES), classifier_hp.input_size)
    finder.save(root / "finder.keras")
    classifier.save(root / "classifier.keras")
    bundle.section("finder").update({
        "model": "finder.keras", "input_size": finder_hp.input_size,
        "base_filters": finder_hp.base_filters, "depth": finder_hp.depth,
        "profile": f"{profile} (untrained)", "threshold": 0.5, "flops": count_flops(finder)})
    bundle.section("classifier").update({
        "model": "classifier.keras", "input_size": classifier_hp.input_size, "crop": "finder",
        "margin": 0.05, "profile": f"{profile} (untrained)",
        "flops": count_flops(classifier)})
    bundle.register_file("finder.keras")
    bundle.register_file("classifier.keras")
    bundle.save()


def export(root: Path, model: str) -> None:
    from edgecrystal.bundle import Bundle
    from edgecrystal.converters.keras_to_onnx import export_bundle

    export_bundle(Bundle.open(root), models=[model])


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "keras":
        build_keras(argv[1], Path(argv[2]))
    elif len(argv) == 3 and argv[0] == "export":
        export(Path(argv[1]), argv[2])
    else:
        print("usage: benchmark_bundle.py keras PROFILE ROOT | export ROOT MODEL",
              file=sys.stdout if argv in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv in (["-h"], ["--help"]) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
