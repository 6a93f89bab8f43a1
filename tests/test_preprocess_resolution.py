"""Preprocessing at the resolution each step needs: reduced JPEG decodes for the finder input,
the drop region found at the mask's resolution and mapped back, crops cut from the coarsest
decode that spans the classifier input. Real files, real decoders, real ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecrystal import preprocess
from edgecrystal.errors import ImageTooLarge, ImageTruncated
from edgecrystal.imageio import Picture, load_picture, read_image, write_image
from edgecrystal.session import open_pipeline
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.randomized import render_random

WIDTH, HEIGHT = 1280, 960


@pytest.fixture(scope="module")
def well(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 1280x960 domain-randomised well as a JPEG, and its drop mask."""
    rgb, mask, _ = render_random(image_rng(5150, 0), WIDTH, HEIGHT, "crystals")
    path = tmp_path_factory.mktemp("well") / "A01_1.jpg"
    write_image(path, rgb, quality=92)
    return path, mask


@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_reduced_decode_matches_a_full_decode_resized(well: tuple[Path, np.ndarray],
                                                      reduction: int) -> None:
    picture = load_picture(well[0])
    reduced = picture.pixels(reduction)
    assert reduced.shape == (HEIGHT // reduction, WIDTH // reduction, 3)
    assert reduced.dtype == np.uint8
    full = read_image(well[0])
    resized = cv2.resize(full, reduced.shape[1::-1], interpolation=cv2.INTER_AREA)
    difference = np.abs(reduced.astype(np.int16) - resized.astype(np.int16))
    assert difference.mean() < 1.5, difference.mean()
    assert np.percentile(difference, 99) <= 12


@pytest.mark.parametrize(("size", "reduction"), [(1000, 1), (256, 2), (160, 4), (100, 8)])
def test_finder_input_comes_from_the_coarsest_decode_that_has_its_size(
        well: tuple[Path, np.ndarray], size: int, reduction: int) -> None:
    picture = load_picture(well[0])
    assert preprocess.coarsest(picture, size, size) == reduction
    from_picture = preprocess.finder_input(picture, size)
    from_full = preprocess.finder_input(read_image(well[0]), size)
    assert from_picture.shape == (size, size, 3)
    assert np.abs(from_picture.astype(np.int16) - from_full.astype(np.int16)).mean() < 1.5


@pytest.mark.parametrize("size", [64, 160, 256])
def test_region_found_at_low_resolution_maps_to_the_full_resolution_box(
        well: tuple[Path, np.ndarray], size: int) -> None:
    """The drawn mask at the finder's resolution gives the box the full-resolution mask gives,
    within one mask pixel's footprint."""
    path, mask = well
    full_mask = mask.astype(np.float32)
    low_mask = cv2.resize(full_mask, (size, size), interpolation=cv2.INTER_AREA)
    picture = load_picture(path)
    at_full = preprocess.crop_drop(read_image(path), full_mask, 160, margin=0.0)
    at_low = preprocess.crop_drop(picture, low_mask, 160, margin=0.0)
    assert at_full.found and at_low.found
    scale_x, scale_y = WIDTH / size, HEIGHT / size
    for corner_low, corner_full, scale in zip(at_low.box, at_full.box,
                                              (scale_x, scale_y, scale_x, scale_y), strict=True):
        assert abs(corner_low - corner_full) <= scale + 1, (at_low.box, at_full.box)
    assert abs(at_low.area - at_full.area) / at_full.area < 0.05
    # The outline is in the original image's pixels, around the same drop.
    assert at_low.outline is not None
    xs, ys = at_low.outline[:, 0, 0], at_low.outline[:, 0, 1]
    x0, y0, x1, y1 = at_low.box
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert xs.max() - xs.min() > 0.8 * (x1 - x0)
    # The crop, cut from a reduced decode, is the picture a full decode gives for that region.
    from_full_decode = preprocess.crop_drop(read_image(path), low_mask, 160, margin=0.0)
    assert from_full_decode.box == at_low.box
    difference = np.abs(at_low.pixels.astype(np.int16) - from_full_decode.pixels.astype(np.int16))
    assert difference.mean() < 2, difference.mean()


def test_crop_reads_full_resolution_only_for_a_small_drop(well: tuple[Path, np.ndarray]) -> None:
    """A box that spans the classifier input at 1/8 is cut from 1/8; a small one needs more."""
    picture = load_picture(well[0])
    big = np.zeros((64, 64), np.float32)
    big[8:56, 8:56] = 1.0  # 960x720 px of a 1280x960 frame: 120 px wide at 1/8
    assert preprocess.crop_drop(picture, big, 96).found
    assert set(picture._decoded) == {8}
    small = np.zeros((64, 64), np.float32)
    # 280x210 px (4.8 % of the frame, a drop's least): only the full decode spans 299 px
    small[25:39, 25:39] = 1.0
    crop = preprocess.crop_drop(picture, small, 299, margin=0.0)
    assert crop.found and crop.box == (500, 375, 780, 585)
    assert 1 in picture._decoded



def test_crop_reuses_the_finder_inputs_decode(well: tuple[Path, np.ndarray]) -> None:
    """With the finder's size given, a crop that 1/8 would span is cut from the finder input's
    decode (1/2 for a 256 px finder on 1280x960): one JPEG decode per image, not two. A box
    that needs a finer decode still gets one, and no drop gives the whole image from it too."""
    path = well[0]
    picture = load_picture(path)
    preprocess.finder_input(picture, 256)
    assert set(picture._decoded) == {2}
    big = np.zeros((64, 64), np.float32)
    big[8:56, 8:56] = 1.0
    crop = preprocess.crop_drop(picture, big, 96, finder_size=256)
    assert crop.found and set(picture._decoded) == {2}
    # The same crop as cutting from a decode at 1/2 with no finder to reuse, up to its pixels'
    # source: a finer decode of the same region.
    alone = preprocess.crop_drop(load_picture(path), big, 96)
    assert alone.box == crop.box
    assert np.abs(alone.pixels.astype(np.int16) - crop.pixels.astype(np.int16)).mean() < 2
    assert not np.array_equal(alone.pixels, crop.pixels)  # 1/8 vs 1/2: what version 3 changed
    whole = preprocess.full_image(picture, 96, finder_size=256)
    assert not whole.found and set(picture._decoded) == {2}
    small = np.zeros((64, 64), np.float32)
    small[25:39, 25:39] = 1.0  # 140 px wide at 1/2: a 299 px input needs the full decode
    assert preprocess.crop_drop(picture, small, 299, margin=0.0, finder_size=256).found
    assert set(picture._decoded) == {1, 2}


def test_pipeline_decodes_each_jpeg_once(fast_bundle: Path, tmp_path: Path) -> None:
    """Scoring: the finder input and the crop come from one decode of the file. An empty
    400x300 well: the fixture's 64 px finder reads the 1/4 decode and finds no drop, and the
    whole image at 1/8 would span its 48 px classifier: before version 3, a second decode."""
    small = tmp_path / "A01_1.jpg"
    empty = np.random.default_rng(0).integers(20, 40, (300, 400, 3), dtype=np.uint8)
    write_image(small, empty)
    with open_pipeline(fast_bundle, backend="onnxruntime", precision="fp32",
                       threads=1) as pipeline:
        loaded = pipeline.read([small])
        scored = pipeline.infer(loaded)
    assert scored[0].ok and not scored[0].found
    picture = loaded[0].picture
    assert picture is not None and set(picture._decoded) == {4}, sorted(picture._decoded)

@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_other_formats_decode_at_full_size_only(well: tuple[Path, np.ndarray], tmp_path: Path,
                                                suffix: str) -> None:
    rgb = read_image(well[0])
    path = tmp_path / f"well{suffix}"
    write_image(path, rgb)
    picture = load_picture(path)
    assert picture.reductions == (1,)
    assert np.array_equal(preprocess.finder_input(picture, 256),
                          preprocess.finder_input(rgb, 256))
    prob = cv2.resize(well[1].astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA)
    from_file, from_array = (preprocess.crop_drop(source, prob, 160) for source in (picture, rgb))
    assert from_file.box == from_array.box and np.array_equal(from_file.pixels, from_array.pixels)


def test_greyscale_jpeg_reduced_is_three_equal_channels(tmp_path: Path) -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8), (200, 2))
    path = tmp_path / "grey.jpg"
    write_image(path, grey)
    reduced = load_picture(path).pixels(4)
    assert reduced.shape == (50, 128, 3)
    assert np.array_equal(reduced[..., 0], reduced[..., 1])
    assert np.array_equal(reduced[..., 1], reduced[..., 2])


def test_picture_checks_the_file_before_decoding(well: tuple[Path, np.ndarray],
                                                 tmp_path: Path) -> None:
    data = well[0].read_bytes()
    with pytest.raises(ImageTruncated):
        Picture(data[: len(data) // 2], "half.jpg")
    with pytest.raises(ImageTooLarge):
        Picture(data, "big.jpg", max_pixels=WIDTH * HEIGHT - 1)


def test_no_drop_in_the_mask_is_found_false(well: tuple[Path, np.ndarray]) -> None:
    picture = load_picture(well[0])
    crop = preprocess.crop_drop(picture, np.zeros((256, 256, 1), np.float32), 160)
    assert not crop.found and crop.area == 0 and crop.outline is None
    assert crop.box == (0, 0, WIDTH, HEIGHT)
    assert crop.pixels.shape == (160, 160, 3)


def test_pipeline_results_are_in_original_pixels(fast_bundle: Path, tmp_path: Path) -> None:
    """The pipeline finds the drop at the finder's 64 px and reports box, area and outline in
    the 1280x960 file's pixels: the same box a full-resolution mask would give."""
    img = np.full((HEIGHT, WIDTH, 3), 70, np.uint8)
    cv2.ellipse(img, (700, 420), (300, 220), 0, 0, 360, (200, 180, 150), -1)
    path = tmp_path / "A01_1.jpg"
    write_image(path, img)
    with open_pipeline(fast_bundle, backend="onnxruntime", threads=1, outlines=True) as pipe:
        (scored,) = pipe.score([path])
        finder_size = pipe.finder_size
        assert pipe.finder is not None
        prob = pipe.finder.predict(preprocess.finder_input(read_image(path), finder_size)[None])
    assert scored.ok and scored.found and (scored.width, scored.height) == (WIDTH, HEIGHT)
    full_mask = preprocess.mask_to_image(prob[0], HEIGHT, WIDTH)
    reference = preprocess.crop_drop(read_image(path), full_mask, 48, margin=pipe.margin)
    step = WIDTH / finder_size + 1
    assert scored.box is not None
    assert all(abs(a - c) <= step for a, c in zip(scored.box, reference.box, strict=True))
    assert abs(scored.area_px - reference.area) / reference.area < 0.05
    assert 0.9 < scored.area_px / (np.pi * 300 * 220) < 1.15
    assert scored.outline is not None and scored.outline[:, 0, 0].max() > 900
