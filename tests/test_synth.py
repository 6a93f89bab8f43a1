"""The synthetic generator: decodable images, exact binary masks, balanced classes, determinism,
plates as an imager writes them."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import DEFAULT_CLASSES
from edgecrystal.errors import UsageError
from edgecrystal.imageio import load_image, read_image
from edgecrystal.synth import STYLES, generate_dataset, make_plate, render_well
from edgecrystal.synth.generate import image_rng


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth") / "set"
    return generate_dataset(out, 16, seed=3, size=128, workers=1)


def test_images_and_masks_are_what_training_reads(small_set) -> None:
    assert small_set.layout == "labels.csv"
    assert len(small_set.records) == 16
    for rec in small_set.records:
        img = load_image(rec.image)
        assert img.pixels.shape == (128, 128, 3)
        assert rec.mask is not None
        mask = read_image(rec.mask)[..., 0]
        assert mask.shape == (128, 128)
        assert set(np.unique(mask)) <= {0, 255}
        frac = float((mask > 0).mean())
        assert 0.05 <= frac <= 0.6, (rec.image.name, frac)
        assert rec.meta["style"] in STYLES


def test_classes_balanced_and_styles_mixed(small_set) -> None:
    assert small_set.class_counts() == {c: 4 for c in DEFAULT_CLASSES}
    assert {r.meta["style"] for r in small_set.records} == set(STYLES)
    header = (small_set.root / "labels.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["image", "mask", "label", "style", "plate", "well"]


def test_same_seed_same_bytes_across_worker_counts(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", 6, seed=11, size=96, workers=1)
    generate_dataset(tmp_path / "b", 6, seed=11, size=96, workers=2)
    generate_dataset(tmp_path / "c", 6, seed=12, size=96, workers=1)
    a, b, c = (_hashes(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) == 19  # 6 images, 6 drop masks, 6 crystal masks, labels.csv
    assert sum(a[k] != c[k] for k in a) >= 12


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("label", DEFAULT_CLASSES)
def test_render_well_every_style_and_class(style: str, label: str) -> None:
    rgb, mask, meta = render_well(image_rng(5, 0), 96, label, style)
    assert rgb.dtype == np.uint8 and rgb.shape == (96, 96, 3)
    assert mask.dtype == bool and mask.shape == (96, 96) and mask.any()
    assert meta["style"] == style
    if style in ("brightfield", "minstrel"):
        # Greyscale camera: equal channels; sepia: red over blue everywhere that is lit.
        if style == "brightfield":
            assert np.array_equal(rgb[..., 0], rgb[..., 2])
        else:
            assert rgb[..., 0].mean() > rgb[..., 2].mean()


def test_class_signal_lives_inside_the_drop() -> None:
    # The same seed drawn as clear and as crystals is the same well, drop and camera: the
    # images differ inside the drop only (plus the blur's reach of a few pixels).
    import cv2

    for style in STYLES:
        clear, m1, _ = render_well(image_rng(9, 0), 160, "clear", style)
        cryst, m2, _ = render_well(image_rng(9, 0), 160, "crystals", style)
        assert np.array_equal(m1, m2)
        diff = np.abs(clear.astype(int) - cryst.astype(int)).sum(axis=2)
        near = cv2.dilate(m1.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert diff[~near].max() == 0
        assert diff[m1].mean() > 0.5


def test_subset_and_unknown_classes(tmp_path: Path) -> None:
    ds = generate_dataset(tmp_path / "two", 4, seed=0, size=96, classes=["clear", "crystals"],
                          styles=["marco"], workers=1)
    assert ds.class_counts() == {"clear": 2, "crystals": 2}
    assert {r.meta["style"] for r in ds.records} == {"marco"}
    with pytest.raises(UsageError, match="unknown class"):
        generate_dataset(tmp_path / "bad", 4, classes=["clear", "sparkles"])
    with pytest.raises(UsageError, match="unknown style"):
        generate_dataset(tmp_path / "bad", 4, styles=["rock-maker"])
    with pytest.raises(UsageError, match="at least 1"):
        generate_dataset(tmp_path / "bad", 0)


def test_make_plate_is_an_imager_folder(tmp_path: Path) -> None:
    paths = make_plate(tmp_path / "plate", seed=2, rows=2, cols=3, width=320, height=240,
                       style="marco")
    assert [p.name for p in paths] == ["A01_1.jpg", "A02_1.jpg", "A03_1.jpg",
                                       "B01_1.jpg", "B02_1.jpg", "B03_1.jpg"]
    for p in paths:
        img = load_image(p)
        assert img.format == "JPEG" and (img.width, img.height) == (320, 240)
    with (tmp_path / "plate" / "truth.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == [p.name for p in paths]
    assert {r["style"] for r in rows} == {"marco"}
    assert {r["label"] for r in rows} <= set(DEFAULT_CLASSES)
    assert sorted(p.name for p in (tmp_path / "plate").iterdir()) == sorted(
        [p.name for p in paths] + ["truth.csv"])
    again = make_plate(tmp_path / "again", seed=2, rows=2, cols=3, width=320, height=240,
                       style="marco", workers=2)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_make_plate_default_is_96_marco_sized_wells(tmp_path: Path) -> None:
    paths = make_plate(tmp_path / "p", seed=0, count=2)
    assert [p.name for p in paths] == ["A01_1.jpg", "A02_1.jpg"]
    assert (load_image(paths[0]).width, load_image(paths[0]).height) == (1280, 960)
    from edgecrystal.synth.plate import well_names

    names = well_names(8, 12)
    assert len(names) == 96 and names[0] == "A01" and names[-1] == "H12"
    with pytest.raises(UsageError, match="1 to 312"):
        make_plate(tmp_path / "q", count=313)
    with pytest.raises(UsageError, match="at least 32"):
        make_plate(tmp_path / "q", width=16)
    from edgecrystal.synth.plate import well_names as names_for

    assert names_for(9, 12)[96:] == [f"I{c:02d}" for c in range(1, 13)]


def test_crystal_masks_mark_crystals_inside_the_drop_only(small_set) -> None:
    """Every image gets a crystal mask (the crystal model's ground truth): crystal pixels in
    crystals drops, inside the drop; none in any other class."""
    for rec in small_set.records:
        crystals = read_image(small_set.root / rec.meta["crystals"])[..., 0]
        drop = read_image(rec.mask)[..., 0] > 0
        assert crystals.shape == drop.shape
        assert set(np.unique(crystals)) <= {0, 255}
        marked = crystals > 0
        assert not (marked & ~drop).any(), rec.image.name
        if rec.label == "crystals":
            assert marked.sum() >= 4, rec.image.name
        else:
            assert not marked.any(), (rec.image.name, rec.label)


def test_crystal_mask_leaves_the_image_as_it_was() -> None:
    """The crystal mask is drawn beside the scene, from no random draw of its own: the image
    of a seed is the same with or without it."""
    from edgecrystal.synth.scene import render_any, render_any_crystals

    for style in ("random", "marco"):
        rgb, mask, meta = render_any(image_rng(21, 2), 160, 120, "crystals", style)
        rgb2, mask2, crystals, meta2 = render_any_crystals(image_rng(21, 2), 160, 120,
                                                          "crystals", style)
        assert np.array_equal(rgb, rgb2) and np.array_equal(mask, mask2) and meta == meta2
        assert crystals.shape == mask.shape and crystals.any() and not (crystals & ~mask).any()
