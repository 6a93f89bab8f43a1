"""Is a classifier useless? Scores that barely vary over many images.

A classifier trained for 2 epochs on a few images can answer "crystals 0.336" for every drop:
nothing fails, every step (train, build-engines, verify, score) goes on, and the results are
worthless. `useless_scores` is the one test for it, shared by those steps; the INT8 check in
converters/build.py (`collapse_warning`: an INT8 model that lost FP32's spread) asks a
different question, of a variant against its FP32 model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Fewer images than this may look alike by chance (a plate of empty wells): no verdict.
MIN_IMAGES = 8
# A class score that moves less than this over all the images says nothing about any of them.
# A trained model's scores span most of [0, 1]; the collapsed one of issue 23 moved < 0.001.
MIN_SPREAD = 0.02


def useless_scores(scores: np.ndarray | Sequence[Sequence[float]],
                   classes: Sequence[str]) -> str | None:
    """One line when no class score varies by MIN_SPREAD over the images (N x classes
    softmax rows, N >= MIN_IMAGES); None when the scores vary or there are too few to tell."""
    rows = np.asarray(scores, dtype=np.float64)
    if rows.ndim != 2 or len(rows) < MIN_IMAGES or rows.shape[1] == 0:
        return None
    spread = rows.max(axis=0) - rows.min(axis=0)
    if float(spread.max()) >= MIN_SPREAD:
        return None
    means = rows.mean(axis=0)
    top = int(means.argmax())
    name = classes[top] if top < len(classes) else f"class {top}"
    return (f"the classifier's scores barely vary over {len(rows)} images (no class score "
            f"moves by {MIN_SPREAD} or more; {name} {means[top]:.3f} on every image): it tells "
            "no image from another; train it longer or on more, more varied data")
