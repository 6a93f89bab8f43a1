"""The crop step (shared by training and runtime): masks with known boxes, empty masks, blobs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecrystal import preprocess
from edgecrystal.preprocess import crop_drop, finder_input, full_image, largest_drop, mask_to_image


def _image(h: int = 200, w: int = 300) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(30, 250, (h, w, 3), dtype=np.uint8)


def test_known_box_without_margin() -> None:
    img = _image()
    mask = np.zeros(img.shape[:2], np.float32)
    mask[50:110, 100:220] = 1.0
    crop = crop_drop(img, mask, 96, margin=0.0)
    assert crop.found
    assert crop.box == (100, 50, 220, 110)
    assert crop.area == 60 * 120
    assert crop.pixels.shape == (96, 96, 3) and crop.pixels.dtype == np.uint8


def test_margin_grows_box_and_clips_at_borders() -> None:
    img = _image()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[0:150, 120:300] = 1  # touches the top and right edges (its centre is in the well)
    crop = crop_drop(img, mask, 64, margin=0.1)
    x0, y0, x1, y1 = crop.box
    assert (x0, y0, x1, y1) == (102, 0, 300, 165)


def test_background_is_masked_inside_the_box() -> None:
    img = np.full((100, 100, 3), 200, np.uint8)
    mask = np.zeros((100, 100), np.uint8)
    cv2.circle(mask, (50, 50), 30, 1, thickness=-1)
    crop = crop_drop(img, mask, 61, margin=0.0)
    # Corners of the circle's box are outside the drop: masked to the background value.
    assert crop.pixels[0, 0].tolist() == [preprocess.BACKGROUND] * 3
    assert crop.pixels[30, 30].tolist() == [200, 200, 200]


def test_largest_component_wins_among_several_blobs() -> None:
    img = _image()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[10:30, 10:30] = 1  # small blob
    mask[80:180, 150:290] = 1  # the drop
    mask[150:170, 20:40] = 1  # another small blob
    crop = crop_drop(img, mask, 64, margin=0.0)
    assert crop.box == (150, 80, 290, 180)
    assert crop.area == 100 * 140


def test_holes_are_filled() -> None:
    mask = np.zeros((100, 100), np.uint8)
    cv2.circle(mask, (50, 50), 40, 1, thickness=-1)
    cv2.circle(mask, (50, 50), 10, 0, thickness=-1)  # a bubble inside the drop
    region = largest_drop(mask)
    assert region is not None and region.filled[50, 50] == 1


def test_outline_is_the_cropped_region_in_image_pixels() -> None:
    img = _image()
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (200, 130), (60, 40), 0, 0, 360, 1, thickness=-1)
    crop = crop_drop(img, mask, 64, margin=0.0)
    assert crop.found and crop.outline is not None
    points = crop.outline.reshape(-1, 2)
    assert (points.min(axis=0) == crop.box[:2]).all()
    assert (points.max(axis=0) + 1 == crop.box[2:]).all()
    assert abs(cv2.contourArea(crop.outline) - crop.area) < 0.05 * crop.area
    assert crop_drop(img, np.zeros_like(mask), 64).outline is None


def test_empty_mask_falls_back_to_whole_image() -> None:
    img = _image()
    crop = crop_drop(img, np.zeros(img.shape[:2], np.float32), 80)
    assert not crop.found and crop.area == 0
    assert crop.box == (0, 0, 300, 200)
    assert crop.pixels.shape == (80, 80, 3)


def test_no_mask_and_speck_fall_back() -> None:
    img = _image()
    assert not crop_drop(img, None, 80).found
    speck = np.zeros(img.shape[:2], np.uint8)
    speck[5:7, 5:7] = 1  # dust-sized: not a drop
    assert not crop_drop(img, speck, 80).found


def test_threshold_applies_to_probabilities() -> None:
    img = _image()
    prob = np.zeros(img.shape[:2], np.float32)
    prob[40:160, 40:160] = 0.4
    prob[60:140, 60:140] = 0.9
    assert crop_drop(img, prob, 64, threshold=0.5, margin=0.0).box == (60, 60, 140, 140)
    assert crop_drop(img, prob, 64, threshold=0.3, margin=0.0).box == (40, 40, 160, 160)


def test_square_padding_keeps_aspect() -> None:
    img = np.full((100, 200, 3), 255, np.uint8)
    crop = full_image(img, 100)
    # 200x100 padded to 200x200: top and bottom quarters are background.
    assert crop.pixels[5, 50].tolist() == [0, 0, 0]
    assert crop.pixels[50, 50].tolist() == [255, 255, 255]


@pytest.mark.parametrize("size", [64, 128])
def test_finder_input_and_mask_back(size: int) -> None:
    img = _image(240, 320)
    x = finder_input(img, size)
    assert x.shape == (size, size, 3) and x.dtype == np.uint8
    prob = np.zeros((size, size, 1), np.float32)
    prob[size // 4 : size // 2, size // 4 : size // 2] = 1
    back = mask_to_image(prob, 240, 320)
    assert back.shape == (240, 320)
    ys, xs = np.nonzero(back >= 0.5)
    assert abs(ys.min() - 60) <= 3 and abs(xs.min() - 80) <= 3


def test_unsure_haze_is_no_drop() -> None:
    """An empty well's faint finder haze just over the threshold is not cropped as a drop."""
    img = _image()
    haze = np.zeros(img.shape[:2], np.float32)
    haze[30:170, 30:270] = 0.6
    assert not crop_drop(img, haze, 64).found
    assert largest_drop(haze) is None
    haze[80:120, 100:200] = 0.95  # somewhere it is sure: the whole region is the drop
    crop = crop_drop(img, haze, 64, margin=0.0)
    assert crop.found and crop.box == (30, 30, 270, 170)


@pytest.mark.parametrize("seed", range(4))
def test_resize_gives_opencvs_uint8_area_pixels(seed: int) -> None:
    """`resize` takes a float route for non-integer shrinks (faster): every model input must
    keep exactly the pixels OpenCV's uint8 area resize gives, whatever the two sides."""
    rng = np.random.default_rng(seed)
    shapes = [(480, 640, 256), (960, 1280, 512), (441, 469, 160), (598, 598, 299),
              (512, 512, 256), (256, 700, 256), (300, 100, 160), (120, 90, 160)]
    shapes += [(int(rng.integers(40, 900)), int(rng.integers(40, 900)), int(size))
               for size in rng.choice([33, 96, 160, 256, 299], 40)]
    for h, w, size in shapes:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if seed % 2:  # smooth pictures round near .5 more often than noise does
            img = cv2.GaussianBlur(img, (9, 9), 3)
        interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
        expected = cv2.resize(img, (size, size), interpolation=interp)
        assert np.array_equal(preprocess.resize(img, size), expected), (h, w, size)


def _blob(mask: np.ndarray, centre: tuple[int, int], radius: int, value: float = 1.0) -> None:
    cv2.circle(mask, centre, radius, value, thickness=-1)


def test_a_fragment_too_small_to_be_a_drop_is_not_cropped() -> None:
    """Drops that fill the well (no edge): the finder marked fragments of 1-3 % of the image."""
    img = _image()  # 300 x 200
    mask = np.zeros(img.shape[:2], np.float32)
    _blob(mask, (150, 100), 22)  # 2.5 % of the image, in the middle of the well
    crop = crop_drop(img, mask, 64)
    assert not crop.found and crop.reason == "too small"
    assert crop.box == (0, 0, 300, 200)


def test_a_region_outside_the_well_is_not_cropped() -> None:
    img = _image()
    mask = np.zeros(img.shape[:2], np.float32)
    _blob(mask, (275, 180), 45)  # a blob in the plate's corner, big enough to be a drop
    crop = crop_drop(img, mask, 64)
    assert not crop.found and crop.reason == "outside the well"
    # A drop in the well is chosen over a bigger blob in the corner.
    _blob(mask, (120, 90), 35)
    crop = crop_drop(img, mask, 64, margin=0.0)
    assert crop.found and crop.reason is None and crop.box == (85, 55, 156, 126)


def test_no_edge_has_its_own_reason() -> None:
    img = _image()
    assert crop_drop(img, np.zeros(img.shape[:2], np.float32), 64).reason == "no edge"
    assert crop_drop(img, None, 64).reason is None  # nothing was looked for
