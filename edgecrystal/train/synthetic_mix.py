"""Synthetic wells to mix into fine-tuning batches: the shipped finder's own kind of training
data (synth style `random`, the sizes and empty share of its provenance), rendered in memory
so a few real photos do not pull the model away from what it learned on them."""

from __future__ import annotations

from pathlib import Path

from .. import DEFAULT_CLASSES
from ..imageio import Picture, encode_image
from ..synth.generate import JPEG_QUALITY, assignments, image_rng, image_size
from ..synth.scene import render_any
from .data import Sample

# As the shipped finder's training data (edgecrystal/pretrained/finder/bundle.json,
# provenance.data.train): 400-640 px on the longer side, up to 4:3, 4 % empty wells.
SIZE_RANGE = (400, 640)
MAX_ASPECT = 1.333
EMPTY_CHANCE = 0.04
STYLE = "random"


def synthetic_samples(n: int, seed: int) -> list[Sample]:
    """`n` rendered wells with their drop masks, seeded: the same n and seed give the same
    wells. Labels cycle through the default classes so the drops' contents vary."""
    # A stream of its own: the fine-tuning seed's wells differ from the shipped finder's.
    stream = seed + 7919
    out = []
    for index, (label, style) in enumerate(assignments(n, stream, DEFAULT_CLASSES, (STYLE,))):
        width, height = image_size(stream, index, SIZE_RANGE, MAX_ASPECT)
        rgb, mask, _ = render_any(image_rng(stream, index), width, height, label, style,
                                  empty_chance=EMPTY_CHANCE)
        # Encoded as synth writes its files, so the one preprocessing reads it as it reads them.
        name = f"<synthetic {stream}/{index}>"
        picture = Picture(encode_image(rgb, ".jpg", JPEG_QUALITY), name)
        out.append(Sample(Path(name), picture, mask, label or None))
    return out
