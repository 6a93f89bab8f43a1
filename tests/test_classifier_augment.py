"""The shipped classifier's recipe (`sim2real`): the paper's classifier augmentation plus the
finder's photometric one (camera and light changes), numpy/OpenCV only."""

from __future__ import annotations

import dataclasses

import numpy as np

from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.scene import render_any
from edgecrystal.train.augment import augment_classifier
from edgecrystal.train.profiles import CLASSIFIER_PROFILES, resolve


def test_sim2real_classifier_recipe() -> None:
    hp = CLASSIFIER_PROFILES["sim2real"]
    assert hp.photometric and hp.backbone == "mobilenet_v3_small" and hp.input_size == 128
    assert not any(CLASSIFIER_PROFILES[p].photometric for p in ("paper", "lite", "edge", "tiny"))
    assert not resolve("classifier", "sim2real", {"photometric": "false"}).photometric


def test_photometric_changes_colours_not_geometry() -> None:
    crop = render_any(image_rng(4, 0), 128, 128, "crystals", "marco")[0]
    hp = dataclasses.replace(CLASSIFIER_PROFILES["sim2real"], hflip=False, vflip=False, shift=0.0,
                             zoom_min=1.0, zoom_max=1.0, channel_shift=0.0)
    plain = dataclasses.replace(hp, photometric=False)
    changed = 0
    for seed in range(12):
        a = augment_classifier(crop, np.random.default_rng(seed), hp)
        b = augment_classifier(crop, np.random.default_rng(seed), plain)
        assert a.shape == crop.shape and a.dtype == np.uint8
        assert np.array_equal(b, crop)  # nothing on: the crop itself
        changed += not np.array_equal(a, crop)
        # Camera changes keep where things are: the picture stays correlated with the crop.
        g_a, g_c = a.astype(float).mean(axis=2), crop.astype(float).mean(axis=2)
        assert np.corrcoef(g_a.ravel(), g_c.ravel())[0, 1] > 0.5
    assert changed >= 10
