"""The one decoder: every format and depth imagers write, and every way a file can be bad."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecrystal import errors
from edgecrystal.imageio import (
    decode_image,
    load_image,
    load_picture,
    read_header,
    read_image,
    write_image,
)


def _gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """An RGB image whose channels differ, so a BGR/RGB swap shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 5 % 256, np.full_like(x, 200)], axis=2).astype(np.uint8)


def _encode(path: Path, bgr_or_gray: np.ndarray) -> Path:
    ok, enc = cv2.imencode(path.suffix, bgr_or_gray)
    assert ok
    path.write_bytes(enc.tobytes())
    return path


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_rgb_roundtrip_keeps_channel_order(tmp_path: Path, suffix: str) -> None:
    rgb = _gradient()
    path = _encode(tmp_path / f"a{suffix}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_decodes_close_to_source(tmp_path: Path) -> None:
    rgb = _gradient()
    write_image(tmp_path / "a.jpg", rgb, quality=98)
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4
    # Blue channel is constant 200 in the source: a channel swap would put it elsewhere.
    assert abs(out[..., 2].mean() - 200) < 3


def test_greyscale_is_replicated(tmp_path: Path) -> None:
    gray = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    out = read_image(_encode(tmp_path / "g.png", gray))
    assert out.shape == (48, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_not_truncated(tmp_path: Path, suffix: str) -> None:
    gray16 = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    out = read_image(_encode(tmp_path / f"d{suffix}", gray16))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


@pytest.mark.parametrize(("top", "bits"), [(4080, 12), (4095, 12), (16383, 14)])
def test_12_and_14_bit_data_in_16_bit_files_use_their_whole_range(tmp_path: Path, top: int,
                                                                   bits: int) -> None:
    """A 12-bit camera's TIFF (max 4080) scaled as 16-bit came out nearly black (max 16)."""
    gray16 = np.array([[0, top // 2, top]], dtype=np.uint16).repeat(4, axis=0)
    out = read_image(_encode(tmp_path / "camera.tif", gray16))
    full = (1 << bits) - 1
    expected = [0, round(top // 2 * 255 / full), round(top * 255 / full)]
    np.testing.assert_array_equal(out[0, :, 0], expected)
    assert out.max() >= 254


def test_16_bit_rgb_tiff(tmp_path: Path) -> None:
    rgb16 = (_gradient().astype(np.uint16) * 257)
    out = read_image(_encode(tmp_path / "c.tiff", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR)))
    np.testing.assert_array_equal(out, _gradient())


def test_rgba_alpha_dropped(tmp_path: Path) -> None:
    rgb = _gradient()
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full(rgb.shape[:2], 7, np.uint8)])
    out = read_image(_encode(tmp_path / "a.png", bgra))
    np.testing.assert_array_equal(out, rgb)


def test_load_image_records_hash_and_size(tmp_path: Path) -> None:
    path = _encode(tmp_path / "a.png", _gradient())
    img = load_image(path)
    assert img.size_bytes == path.stat().st_size
    assert len(img.sha256) == 64 and img.format == "PNG"
    assert (img.width, img.height) == (64, 48)


def test_headers_give_size_without_decoding(tmp_path: Path) -> None:
    for suffix, fmt in ((".jpg", "JPEG"), (".png", "PNG"), (".bmp", "BMP"), (".tif", "TIFF")):
        path = _encode(tmp_path / f"h{suffix}", _gradient(30, 70))
        header = read_header(path.read_bytes())
        assert (header.format, header.width, header.height) == (fmt, 70, 30)


# ------------------------------------------------------------------ refusals


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ImageMissing, match="does not exist"):
        read_image(tmp_path / "nope.jpg")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(errors.ImageEmpty):
        read_image(tmp_path / "e.jpg")


def test_text_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "t.jpg").write_text("this is not a picture\n")
    with pytest.raises(errors.NotAnImage, match="unknown signature"):
        read_image(tmp_path / "t.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    with pytest.raises(errors.NotAnImage, match="directory"):
        read_image(tmp_path / "d.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp"])
def test_truncated_files(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    full = _encode(tmp_path / f"full{suffix}", noisy).read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(errors.ImageTruncated):
        read_image(cut)


def test_truncated_tiff(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    full = _encode(tmp_path / "f.tif", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(errors.ImageError):
        read_image(cut)


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    """A PNG that claims 30000x30000 is refused before any pixel buffer is allocated."""
    small = _encode(tmp_path / "s.png", _gradient(8, 8)).read_bytes()
    bomb = bytearray(small)
    bomb[16:24] = struct.pack(">II", 30000, 30000)
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(bomb))
    with pytest.raises(errors.ImageTooLarge, match="30000x30000"):
        read_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = _encode(tmp_path / "a.png", _gradient(48, 64))
    with pytest.raises(errors.ImageTooLarge):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=48 * 64).shape == (48, 64, 3)


def test_jpeg_bomb_header(tmp_path: Path) -> None:
    data = bytearray(_encode(tmp_path / "a.jpg", _gradient()).read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 40000, 40000)
    with pytest.raises(errors.ImageTooLarge):
        decode_image(bytes(data), "bomb.jpg")


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.jpg").write_text("x")
    with pytest.raises(errors.ImageError) as info:
        read_image(tmp_path / "t.jpg")
    assert "\n" not in str(info.value) and str(tmp_path / "t.jpg") in str(info.value)
    assert info.value.kind == "not_an_image"


def test_real_samples_decode(real_samples: Path) -> None:
    """Every real imager photo beside the checkout decodes to RGB uint8 at its true size."""
    files = sorted(p for p in real_samples.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    assert len(files) >= 10
    for path in files:
        header = read_header(path.read_bytes())
        img = read_image(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[:2] == (header.height, header.width)


def _bit_flipped_jpeg(path: Path) -> Path:
    """A whole JPEG (end marker in place) with bits flipped in its entropy-coded data: libjpeg
    decodes it with "Corrupt JPEG data" on stderr and no error."""
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    write_image(path, rgb, quality=90)
    data = bytearray(path.read_bytes())
    scan = data.find(b"\xff\xda") + 20
    for offset in range(scan + 100, len(data) - 400, 97):
        data[offset] ^= 0x24
    path.write_bytes(bytes(data))
    return path


def test_corrupt_jpeg_data_decodes_with_a_warning(tmp_path: Path) -> None:
    picture = load_picture(_bit_flipped_jpeg(tmp_path / "flipped.jpg"))
    assert picture.pixels(1).shape == (240, 320, 3)
    assert len(picture.warnings) == 1 and "corrupt JPEG data" in picture.warnings[0]
    assert "\n" not in picture.warnings[0]
    write_image(tmp_path / "whole.jpg", _gradient())
    assert load_picture(tmp_path / "whole.jpg").warnings == ()
    assert load_picture(_encode(tmp_path / "whole.png", _gradient())).warnings == ()
