"""Synthetic crystallization-drop images: well photos in the style of real imagers, with drop
masks and class labels. The project's embedded data for demos, tests and benchmarks.

    generate_dataset(out, n, seed)   a data set in the project's layout (docs/data.md)
    make_plate(out, seed)            a plate imaging: A01_1.jpg .. H12_1.jpg + truth.csv
    render_well(rng, size, label, style)  one image, its mask and metadata
"""

from __future__ import annotations

from .. import DEFAULT_CLASSES
from .contents import KNOWN_CLASSES, check_classes
from .generate import check_styles, generate_dataset
from .plate import TRUTH_FILE, make_plate
from .styles import STYLES
from .well import render_scene, render_well

__all__ = [
    "DEFAULT_CLASSES",
    "KNOWN_CLASSES",
    "STYLES",
    "TRUTH_FILE",
    "check_classes",
    "check_styles",
    "generate_dataset",
    "make_plate",
    "render_scene",
    "render_well",
]
