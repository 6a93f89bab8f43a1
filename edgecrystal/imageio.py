"""edgecrystal's one image decoder: a file in, RGB uint8 pixels out, or a typed error that says why.

Imagers write JPEG, PNG, BMP and TIFF, 8- or 16-bit (a 16-bit file scaled by the sensor depth
its values use: 12, 14 or 16 bits), greyscale, RGB or RGBA. Everything in the
project (training, calibration, scoring, the daemon) reads images through `load_picture` (a
`Picture`: checked now, decoded later at the resolution a step needs, a JPEG reduced through
libjpeg's DCT scaling) or `read_image` / `load_image` (the full decode), so a quirk is handled
once. The image's size is read from its header before any
pixel is decoded: a 30000x30000 file is refused without allocating gigabytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import (
    ImageEmpty,
    ImageMissing,
    ImageTooLarge,
    ImageTruncated,
    ImageUnreadable,
    ImageUnsupported,
    NotAnImage,
)

# 64 megapixels: four times the largest imager frame we know of (a 2532x2028 close-up is 5 MP).
DEFAULT_MAX_PIXELS = 64_000_000
# A compressed file larger than this is not a drop photo.
MAX_FILE_BYTES = 1 << 30

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Header:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels plus what a result file records about the source file."""

    pixels: np.ndarray  # HxWx3 uint8 RGB
    sha256: str
    size_bytes: int
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `path` to HxWx3 uint8 RGB, or raise an `ImageError` subclass naming the reason."""
    return load_image(path, max_pixels).pixels


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    data = _read_bytes(Path(path))
    pixels, fmt = decode_image(data, path, max_pixels)
    return LoadedImage(pixels, hashlib.sha256(data).hexdigest(), len(data), fmt)


class Picture:
    """A file's encoded bytes, checked (header, size limit, completeness) before any pixel is
    decoded, then decoded on demand at a reduction: a JPEG at 1/2, 1/4 or 1/8 through libjpeg's
    DCT scaling (a fraction of a full decode's time), every other format only at full size.
    Each decode is kept, so asking twice costs nothing. What preprocess reads as a `Source`."""

    def __init__(self, data: bytes, name: object = "<bytes>",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        header = _checked_header(data, name, max_pixels)
        self.format = header.format
        self.width, self.height = header.width, header.height
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size_bytes = len(data)
        self.name = name
        self.reductions: tuple[int, ...] = JPEG_REDUCTIONS if header.format == "JPEG" else (1,)
        self._data = data
        self._decoded: dict[int, np.ndarray] = {}
        self._warnings: tuple[str, ...] | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is wrong with a file that still decodes (result files record it): a JPEG whose
        entropy-coded data libjpeg finds corrupt ("corrupt JPEG data: ...")."""
        if self._warnings is None:
            problem = jpeg_data_problem(self._data) if self.format == "JPEG" else None
            self._warnings = (f"corrupt JPEG data: {problem}",) if problem else ()
        return self._warnings

    def pixels(self, reduction: int = 1) -> np.ndarray:
        """HxWx3 uint8 RGB at 1/`reduction` (ceil(side / reduction) pixels a side)."""
        if reduction not in self.reductions:
            raise ValueError(f"{self.format} decodes at {self.reductions}, not 1/{reduction}")
        if reduction not in self._decoded:
            self._decoded[reduction] = self._decode(reduction)
        return self._decoded[reduction]

    def _decode(self, reduction: int) -> np.ndarray:
        if reduction == 1:
            pixels = _decode_pixels(self._data, self.format, self.name)
            self._follow_orientation(pixels.shape[1], pixels.shape[0], 1)
            return pixels
        import cv2

        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}[reduction]
        img = cv2.imdecode(np.frombuffer(self._data, dtype=np.uint8), flag)
        if img is None:
            raise ImageTruncated(self.name, "JPEG data is corrupt or cut short (decoder failed)")
        self._follow_orientation(img.shape[1], img.shape[0], reduction)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _follow_orientation(self, width: int, height: int, reduction: int) -> None:
        """OpenCV turns a JPEG as its EXIF orientation says: a quarter turn swaps the sides."""
        expected = (-(-self.width // reduction), -(-self.height // reduction))
        if (width, height) != expected and (height, width) == expected:
            self.width, self.height = self.height, self.width


# libjpeg's DCT scaling factors that OpenCV exposes (IMREAD_REDUCED_COLOR_*), finest first.
JPEG_REDUCTIONS = (1, 2, 4, 8)


def load_picture(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """A file as a `Picture`: read and checked now, decoded at the resolution asked later."""
    return Picture(_read_bytes(Path(path)), path, max_pixels)


def decode_image(
    data: bytes, name: object = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """Decode encoded bytes; returns (RGB uint8 pixels, format name)."""
    header = _checked_header(data, name, max_pixels)
    return _decode_pixels(data, header.format, name), header.format


def _checked_header(data: bytes, name: object, max_pixels: int) -> Header:
    """The header, once the file is known to be a whole image of an allowed size."""
    if not data:
        raise ImageEmpty(name, "file is empty (0 bytes)")
    header = read_header(data, name)
    if header.width <= 0 or header.height <= 0:
        raise NotAnImage(name, f"{header.format} header gives an impossible size "
                               f"{header.width}x{header.height}")
    if header.width * header.height > max_pixels:
        raise ImageTooLarge(
            name,
            f"{header.width}x{header.height} pixels is over the limit of {max_pixels:,} "
            "(refused before decoding)",
        )
    _check_complete(data, header, name)
    return header


def _decode_pixels(data: bytes, format_name: str, name: object) -> np.ndarray:
    import cv2  # deferred: keeps `edgecrystal --help` instant

    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise ImageTruncated(name, f"{format_name} data is corrupt or cut short (decoder failed)")
    return _to_rgb8(img, name)


def read_header(data: bytes, name: object = "<bytes>") -> Header:
    """The format and pixel size from the first bytes of a file, without decoding pixels."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_header(data, name)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_header(data, name)
    if data[:2] == b"BM":
        return _bmp_header(data, name)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_header(data, name)
    raise NotAnImage(name, "not a JPEG, PNG, BMP or TIFF file (unknown signature)")


def _read_bytes(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageMissing(path, "file does not exist") from None
    except PermissionError:
        raise ImageUnreadable(path, "permission denied") from None
    if path.is_dir():
        raise NotAnImage(path, "is a directory, not an image file")
    if st.st_size > MAX_FILE_BYTES:
        raise ImageTooLarge(path, f"file is {st.st_size:,} bytes, over {MAX_FILE_BYTES:,}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageMissing(path, "file vanished while being read") from None
    except PermissionError:
        raise ImageUnreadable(path, "permission denied") from None
    except OSError as exc:
        raise ImageUnreadable(path, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ImageEmpty(path, "file is empty (0 bytes)")
    return data


def jpeg_data_problem(data: bytes) -> str | None:
    """libjpeg's complaint about a JPEG's data ("premature end of data segment"), or None.

    OpenCV decodes past corrupt data and libjpeg's warning goes to the process's stderr with no
    file name, so the check is a second, strict libjpeg-turbo pass (simplejpeg), entropy-decoding
    every block but doing the least else: greyscale, 1/8 scale, fast DCT. On the real samples'
    JPEGs it costs about what OpenCV's 1/8 decode does."""
    import simplejpeg  # deferred: keeps `edgecrystal --help` instant

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", fastdct=True, min_height=1,
                               min_width=1, min_factor=8, strict=True)
    except ValueError as exc:
        message = " ".join(str(exc).split())
        return message.removeprefix("Corrupt JPEG data: ") or "libjpeg refused it"
    return None


def _jpeg_header(data: bytes, name: object) -> Header:
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise NotAnImage(name, "JPEG marker structure is broken")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return Header("JPEG", width, height)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise ImageTruncated(name, "JPEG ends before its frame header (no image size found)")


def _png_header(data: bytes, name: object) -> Header:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageTruncated(name, "PNG ends before its IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return Header("PNG", width, height)


def _bmp_header(data: bytes, name: object) -> Header:
    if len(data) < 26:
        raise ImageTruncated(name, "BMP ends before its header")
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return Header("BMP", abs(width), abs(height))


def _tiff_header(data: bytes, name: object) -> Header:
    endian = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            (ifd,) = struct.unpack(endian + "Q", data[8:16])
            (count,) = struct.unpack(endian + "Q", data[ifd : ifd + 8])
            entry_size, first, value_fmt = 20, ifd + 8, "Q"
        else:
            (ifd,) = struct.unpack(endian + "I", data[4:8])
            (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
            entry_size, first, value_fmt = 12, ifd + 2, "I"
        size: dict[int, int] = {}
        for i in range(min(count, 4096)):
            off = first + i * entry_size
            tag, typ = struct.unpack(endian + "HH", data[off : off + 4])
            if tag in (256, 257):
                value_off = off + (12 if big else 8)
                if typ == 3:  # SHORT: left-justified in the value field
                    (value,) = struct.unpack(endian + "H", data[value_off : value_off + 2])
                else:
                    (value,) = struct.unpack(endian + value_fmt,
                                             data[value_off : value_off + (8 if big else 4)])
                size[tag] = value
            if len(size) == 2:
                return Header("TIFF", size[256], size[257])
    except struct.error:
        raise ImageTruncated(name, "TIFF ends inside its first directory") from None
    raise NotAnImage(name, "TIFF directory has no image width/length")


def _check_complete(data: bytes, header: Header, name: object) -> None:
    """Refuse files cut short: OpenCV would otherwise fill the missing part with grey."""
    if header.format == "JPEG":
        sos = data.find(b"\xff\xda")
        # Entropy-coded data never holds FF D9 (FF is stuffed), so an end-of-image marker after
        # the first scan means the file was written to the end. Searched from the end, where a
        # whole file has it: a forward search read the whole scan (0.27 ms for 300 KB).
        if sos < 0 or data.rfind(b"\xff\xd9", sos) < 0:
            raise ImageTruncated(name, "JPEG is cut short (no end-of-image marker)")
    elif header.format == "PNG":
        if data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
            raise ImageTruncated(name, "PNG is cut short (no IEND chunk)")
    elif header.format == "BMP":
        offset, = struct.unpack("<I", data[10:14])
        bpp, = struct.unpack("<H", data[28:30]) if len(data) >= 30 else (0,)
        compression = struct.unpack("<I", data[30:34])[0] if len(data) >= 34 else 0
        if bpp and compression in (0, 3):
            stride = ((header.width * bpp + 31) // 32) * 4
            if len(data) < offset + stride * header.height:
                raise ImageTruncated(name, "BMP is cut short (fewer rows than its header says)")


def _to_rgb8(img: np.ndarray, name: object) -> np.ndarray:
    import cv2

    if img.dtype == np.uint16:
        # Scaled by the depth the camera used (a plain cast would wrap), with rounding.
        full = (1 << bits_used(img)) - 1
        img = ((img.astype(np.uint32) * 255 + full // 2) // full).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageUnsupported(name, f"pixel type {img.dtype} is not 8- or 16-bit integer")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    channels = img.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ImageUnsupported(name, f"{channels} colour channels")


# Sensor depths stored in 16-bit files. 12-bit cameras are common (max 4095; one real imager's
# TIFFs top out at 4080) and their files say BitsPerSample 16, so the depth is read from the data.
SENSOR_DEPTHS = (12, 14, 16)


def bits_used(pixels: np.ndarray) -> int:
    """The smallest sensor depth that holds every value of a 16-bit image: 12-bit data in a
    16-bit file scaled as 16-bit comes out nearly black (4080 -> 16 of 255)."""
    top = int(pixels.max()) if pixels.size else 0
    return next(bits for bits in SENSOR_DEPTHS if top < 1 << bits)


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, quality: int = 92) -> None:
    """Encode RGB (or single-channel) uint8 pixels to `path`; the format follows the suffix."""
    Path(path).write_bytes(encode_image(rgb, Path(path).suffix or ".png", quality, path))


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 92,
                 name: object = "<pixels>") -> bytes:
    """RGB (or single-channel) uint8 pixels as the bytes of a `suffix` file (".jpg", ".png"...):
    what `write_image` writes, for pictures that never touch the disk."""
    import cv2

    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if suffix.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, enc = cv2.imencode(suffix, arr, params)
    if not ok:
        raise ImageUnsupported(name, "OpenCV could not encode this image")
    return bytes(enc.tobytes())
