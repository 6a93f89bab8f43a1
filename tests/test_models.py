"""Model builders: shapes, the FLOP budget of the profiles, ImageNet weights loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecrystal import models
from edgecrystal.errors import UsageError
from edgecrystal.train.profiles import CLASSIFIER_PROFILES, FINDER_PROFILES

# Keras models and TensorFlow in every test: the slow tier.
pytestmark = pytest.mark.slow


def test_finder_shapes_and_profile_flop_ratio() -> None:
    tiny = FINDER_PROFILES["tiny"]
    finder = models.build_finder(tiny.input_size, tiny.base_filters, tiny.depth)
    assert finder.input.shape[1:] == (tiny.input_size, tiny.input_size, 3)
    assert finder.output.shape[1:] == (tiny.input_size, tiny.input_size, 1)
    out = finder.predict(np.zeros((2, tiny.input_size, tiny.input_size, 3), np.uint8), verbose=0)
    assert out.shape == (2, tiny.input_size, tiny.input_size, 1)
    assert np.all((out >= 0) & (out <= 1))

    paper, lite = FINDER_PROFILES["paper"], FINDER_PROFILES["lite"]
    paper_flops = models.count_flops(models.build_finder(paper.input_size, paper.base_filters,
                                                         paper.depth))
    lite_flops = models.count_flops(models.build_finder(lite.input_size, lite.base_filters,
                                                        lite.depth))
    assert paper_flops / lite_flops >= 20
    # The paper's U-Net at 512 px is a few hundred GFLOPs: a sanity check of the counter.
    assert 1e11 < paper_flops < 1e12


def test_finder_size_must_divide() -> None:
    with pytest.raises(UsageError):
        models.build_finder(100, 4, 4)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_classifier_shape_and_imagenet_weights(tmp_path: Path) -> None:
    import keras

    size = CLASSIFIER_PROFILES["tiny"].input_size
    clf = models.build_classifier(3, size)
    assert clf.output.shape[1:] == (3,)
    probs = clf.predict(np.zeros((1, size, size, 3), np.uint8), verbose=0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)

    # A no-top Inception-V3 weights file (stand-in for the ImageNet one) lands in the backbone.
    backbone = keras.applications.InceptionV3(include_top=False, weights=None,
                                              input_shape=(size, size, 3), pooling="avg")
    weights = tmp_path / "inception_notop.weights.h5"
    backbone.save_weights(str(weights))
    loaded = models.build_classifier(3, size, imagenet_weights=weights)
    inner = next(layer for layer in loaded.layers if layer.name == backbone.name)
    np.testing.assert_array_equal(inner.get_weights()[0], backbone.get_weights()[0])

    # A file of another network is refused with a one-line UsageError.
    wrong = tmp_path / "finder.weights.h5"
    models.build_finder(32, 4, 2).save_weights(str(wrong))
    with pytest.raises(UsageError) as err:
        models.build_classifier(3, size, imagenet_weights=wrong)
    assert "\n" not in str(err.value)
