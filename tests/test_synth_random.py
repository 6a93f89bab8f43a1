"""The domain-randomised style `random`: well shapes, framings, drop counts, empty wells, image
sizes and aspect ratios, class contents independent of the scene, and the finder's photometric
augmentation keeping image and mask aligned. No TensorFlow."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecrystal.errors import UsageError
from edgecrystal.imageio import read_image
from edgecrystal.synth import check_styles, generate_dataset
from edgecrystal.synth.generate import image_rng, image_size
from edgecrystal.synth.randomized import render_random, well_radius_field
from edgecrystal.synth.scene import render_any
from edgecrystal.train.augment import augment_finder
from edgecrystal.train.profiles import FINDER_PROFILES


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray, dict[str, str]]]:
    return [render_random(image_rng(5, i), 200, 150, "crystals") for i in range(40)]


def test_images_masks_and_sizes(scenes) -> None:
    for rgb, mask, meta in scenes:
        assert rgb.shape == (150, 200, 3) and rgb.dtype == np.uint8
        assert mask.shape == (150, 200) and mask.dtype == bool
        assert meta["style"] == "random"
        assert mask.any()  # empty_chance defaults to 0


def test_scenes_cover_shapes_framings_and_drop_counts(scenes) -> None:
    kinds = {meta["drop_shape"].split("/")[0] for _, _, meta in scenes}
    framings = {meta["drop_shape"].split("/")[1] for _, _, meta in scenes}
    assert kinds == {"round", "square", "octagon"}
    assert framings == {"centred", "off-centre", "close-up"}
    components = [cv2.connectedComponents(m.astype(np.uint8))[0] - 1 for _, m, _ in scenes]
    assert max(components) >= 2  # 2- and 3-drop wells occur
    fractions = [m.mean() for _, m, _ in scenes]
    assert min(fractions) < 0.03 and max(fractions) > 0.4  # tiny drops and filling drops
    # Drops cut by the frame (close-ups, off-centre wells) occur.
    assert any(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
               for _, m, _ in scenes)
    # Greyscale images occur among coloured ones.
    grey = [bool((rgb[..., 0] == rgb[..., 1]).all()) for rgb, _, _ in scenes]
    assert any(grey) and not all(grey)


def test_octagon_cuts_the_corners() -> None:
    # Four points, (x, y) pairwise: centre, on the x axis, on the y axis, near a corner.
    dx = np.array([0.0, 0.9, 0.0, 0.8], np.float32)
    dy = np.array([0.0, 0.0, 0.9, 0.8], np.float32)
    square = well_radius_field("square", dx, dy, 1.0, 1.0, 1.4)
    octagon = well_radius_field("octagon", dx, dy, 1.0, 1.0, 1.4)
    round_ = well_radius_field("round", dx, dy, 1.0, 1.0, 1.4)
    assert (square[:3] < 1).all() and (octagon[:3] < 1).all()
    corner = 3  # (0.8, 0.8): inside the square, cut off the octagon and outside the circle
    assert square[corner] < 1 < octagon[corner] and round_[corner] > 1


def test_empty_well_has_no_drop() -> None:
    rgb, mask, _ = render_random(image_rng(1, 0), 160, 160, "clear", empty_chance=1.0)
    assert not mask.any()
    assert rgb.std() > 1  # still a well picture


def test_same_seed_other_class_same_scene() -> None:
    """The class only paints the drop's contents: scene, drop and camera stay the same, so a
    classifier trained on this style still has only the contents to go by."""
    a_rgb, a_mask, _ = render_random(image_rng(3, 7), 240, 180, "clear")
    b_rgb, b_mask, b_meta = render_random(image_rng(3, 7), 240, 180, "precipitate")
    assert (a_mask == b_mask).all()
    diff = np.abs(a_rgb.astype(int) - b_rgb.astype(int)).sum(axis=2)
    inner = cv2.erode(a_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    outer = ~cv2.dilate(a_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert diff[inner].mean() > 3 * max(diff[outer].mean(), 0.5)
    assert b_meta["habit"]


def test_render_any_draws_random_and_is_deterministic() -> None:
    one = render_any(image_rng(2, 4), 128, 96, "other", "random")
    two = render_any(image_rng(2, 4), 128, 96, "other", "random")
    assert (one[0] == two[0]).all() and (one[1] == two[1]).all()
    assert check_styles(["random"]) == ("random",)
    with pytest.raises(UsageError):
        check_styles(["nosuch"])


def test_image_sizes_span_the_range_and_aspects() -> None:
    sizes = [image_size(0, i, (500, 2600), 4 / 3) for i in range(200)]
    longer = [max(s) for s in sizes]
    ratios = [max(s) / min(s) for s in sizes]
    assert min(longer) >= 500 and max(longer) <= 2600
    assert max(longer) - min(longer) > 1500
    assert min(ratios) >= 1.0 and max(ratios) <= 4 / 3 + 0.01 and max(ratios) > 1.25
    assert any(w < h for w, h in sizes) and any(w > h for w, h in sizes)
    assert image_size(0, 3, 256, 1.0) == (256, 256)


def test_dataset_with_empty_wells_and_sizes(tmp_path: Path) -> None:
    ds = generate_dataset(tmp_path / "set", 12, seed=4, size=(96, 160), styles=["random"],
                          max_aspect=1.333, empty_fraction=0.5, workers=1)
    empty = labelled = 0
    for rec in ds.records:
        image = read_image(rec.image)
        mask = read_image(rec.mask)[..., 0]
        assert image.shape[:2] == mask.shape
        assert 96 <= max(mask.shape) <= 160
        if mask.any():
            labelled += 1
            assert rec.label
        else:
            empty += 1
            assert rec.label is None  # an empty well has no class
    assert empty >= 2 and labelled >= 2
    with pytest.raises(UsageError):
        generate_dataset(tmp_path / "bad", 2, size=(300, 200))


def test_synth_cli_random_style(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "edgecrystal", "synth", str(out), "--n", "4", "--style",
         "random", "--size", "96", "--max-size", "128", "--max-aspect", "1.333",
         "--workers", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 4 and {r["style"] for r in rows} == {"random"}
    bad = subprocess.run(
        [sys.executable, "-m", "edgecrystal", "synth", str(tmp_path / "x"), "--n", "2",
         "--size", "128", "--max-size", "100"], capture_output=True, text=True, timeout=60,
        check=False)
    assert bad.returncode != 0 and "--max-size" in bad.stderr


def test_photometric_and_flip_augmentation_keep_mask_aligned() -> None:
    hp = FINDER_PROFILES["sim2real"]
    assert hp.photometric and hp.flips
    assert not FINDER_PROFILES["paper"].photometric and not FINDER_PROFILES["paper"].flips
    size = hp.input_size
    img = np.full((size, size, 3), 40, np.uint8)
    mask = np.zeros((size, size), np.float32)
    img[20:70, 30:110] = 220  # an off-centre bright drop: any misaligned flip shows
    mask[20:70, 30:110] = 1
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(30):
        out, m = augment_finder(img, mask, rng, hp)
        assert out.shape == img.shape and m.shape == (size, size, 1)
        inside, outside = out[m[..., 0] > 0.5].mean(), out[m[..., 0] < 0.5].mean()
        assert inside > outside + 40
        changed += int(not np.array_equal(m[..., 0], mask))
    assert changed > 20  # geometry is augmented, not only the colours
