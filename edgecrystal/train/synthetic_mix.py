"""Synthetic wells to mix into fine-tuning batches: each shipped model's own kind of training
data, rendered in memory so a few real photos do not pull the model away from what it learned
on them. The finder's: synth style `random` with the sizes and empty share of its provenance;
the classifier's: labelled wells of every style at the shipped classifier's sizes, a share of
them close-ups of the drop as in its training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import DEFAULT_CLASSES
from ..imageio import Picture, encode_image
from ..synth.generate import JPEG_QUALITY, assignments, image_size, render_view
from ..synth.styles import ALL_STYLES
from .data import Sample

# As the shipped finder's training data (edgecrystal/pretrained/finder/bundle.json,
# provenance.data.train): 400-640 px on the longer side, up to 4:3, 4 % empty wells.
SIZE_RANGE = (400, 640)
MAX_ASPECT = 1.333
EMPTY_CHANCE = 0.04
STYLE = "random"
# As the shipped classifier's (scripts/build_default_classifier.py): 320-512 px, the style
# `random` and the four imager styles, no empty wells (an empty well has no class).
CLASSIFIER_SIZE_RANGE = (320, 512)
CLASSIFIER_STYLES: tuple[str, ...] = ALL_STYLES
# As its last training (build_default_classifier.py --closeup-share 0.4): that share of wells
# asked to be close-ups of the drop (synth --closeup-fraction; small drops stay whole).
CLASSIFIER_CLOSEUPS = 0.4


def synthetic_samples(n: int, seed: int, styles: Sequence[str] = (STYLE,),
                      size_range: tuple[int, int] = SIZE_RANGE,
                      empty_chance: float = EMPTY_CHANCE,
                      closeups: float = 0.0) -> list[Sample]:
    """`n` rendered wells with their drop masks, seeded: the same arguments give the same
    wells. Labels cycle through the default classes (balanced, styles balanced within each),
    so the drops' contents vary; a well rendered empty has no label. `closeups`: the share
    asked to be close-ups of the drop, as `synth --closeup-fraction` makes them."""
    # A stream of its own: the fine-tuning seed's wells differ from the shipped models'.
    stream = seed + 7919
    out = []
    for index, (label, style) in enumerate(assignments(n, stream, DEFAULT_CLASSES,
                                                       tuple(styles))):
        width, height = image_size(stream, index, size_range, MAX_ASPECT)
        rgb, mask, _, _ = render_view(stream, index, width, height, label, style,
                                      empty_chance, closeups)
        # Encoded as synth writes its files, so the one preprocessing reads it as it reads them.
        name = f"<synthetic {stream}/{index}>"
        picture = Picture(encode_image(rgb, ".jpg", JPEG_QUALITY), name)
        out.append(Sample(Path(name), picture, mask, (label or None) if mask.any() else None))
    return out


def classifier_samples(n: int, seed: int) -> list[Sample]:
    """Labelled wells for the classifier's fine-tuning mix (every one holds a drop)."""
    return synthetic_samples(n, seed, CLASSIFIER_STYLES, CLASSIFIER_SIZE_RANGE, 0.0,
                             CLASSIFIER_CLOSEUPS)
