"""Decoding a data file into what the transforms take: an 8-bit PIL image, or a FloatImage.

Files that 8-bit RGB or grayscale holds without loss (PNG, JPEG, BMP, WebP, 8-bit TIFF) stay PIL
images and go through the original release's 8-bit steps unchanged. The others become a
`FloatImage`, float32 values in [0, 1] of shape (H, W, C), so that no precision is lost before the
network sees them:

- 16-bit PNG (grayscale, with alpha, RGB, RGBA) and 16-bit TIFF: value / 65535.
- TIFF with several pages: each page is one channel (all pages of one size); a one-page TIFF may
  hold its channels as samples, (H, W, C), or planes, (C, H, W). Reading these needs `tifffile`
  (pip install "pyi2i[tiff]").
- NumPy `.npy` arrays: (H, W), (H, W, C) or (C, H, W); of the first and the last axis, the
  shorter holds the channels (the last when they are equally long).

Whatever the file, its values are mapped onto [0, 1] by their type: uint8 / 255, uint16 / 65535,
bool as 0 and 1, and float taken as already in [0, 1]. A float file with a value outside [0, 1]
(or NaN) is an error rather than being clipped or rescaled per file, which would give the same
value a different meaning in different files. The transforms then map [0, 1] onto the network's
[-1, 1] as they do 8-bit values.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pyi2i.data.images import _DECODE_ERRORS, DataError, unreadable

TIFF_SUFFIXES = (".tif", ".tiff")
# PIL modes holding more than 8 bits per value; PIL holds them only as one channel
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# Rec. 601 luma, the weights of PIL's convert('L'), so the two paths make the same gray from colour
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_INSTALL = 'pip install "pyi2i[tiff]" (the tifffile package)'


@dataclass(frozen=True)
class FloatImage:
    """An image as float32 values in [0, 1], (H, W, C), with the file it came from and the bits
    per value stored there. It has the part of PIL's Image interface the datasets use (`size`,
    `crop`), so a dataset handles both kinds alike."""

    pixels: np.ndarray  # (H, W, C) float32 in [0, 1]
    path: str
    bits: int  # bits per value in the file: 8, 16, 32 or 64

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL gives it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    def crop(self, box: tuple[int, int, int, int]) -> FloatImage:
        left, top, right, bottom = box
        return FloatImage(self.pixels[top:bottom, left:right], self.path, self.bits)

    def with_channels(self, channels: int) -> np.ndarray:
        """(H, W, channels): the pixels, or the conversion PIL's convert() makes between gray, gray
        with alpha, RGB and RGBA (alpha dropped, not composited, as the original's convert('RGB'))."""
        have = self.channels
        if have == channels:
            return self.pixels
        if channels == 1 and have in (3, 4):
            return self.pixels[..., :3] @ _LUMA[:, None]
        if channels == 1 and have == 2:
            return self.pixels[..., :1]
        if channels == 3 and have in (1, 2):
            return np.repeat(self.pixels[..., :1], 3, axis=2)
        if channels == 3 and have == 4:
            return self.pixels[..., :3]
        raise DataError(f"{self.path} holds {have} channels, but it is read with {channels} "
                        f"(--input_nc / --output_nc): store the images with {channels} channels, "
                        f"or set the option to {have}")


def load_image(path: str | os.PathLike) -> Image.Image | FloatImage:
    """The file at `path` fully decoded: a PIL image when 8 bits per value hold it without loss,
    else a FloatImage; DataError naming the file if it cannot be read."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".npy":
            return _float_image(read_npy(path), path)
        if suffix in TIFF_SUFFIXES and _tiff_needs_tifffile(path):
            return _float_image(_read_tiff(path), path)
        if suffix == ".png" and _png_header(path) in ((16, 2), (16, 4), (16, 6)):  # colour or alpha
            return _float_image(_read_png16(path), path)
        with Image.open(path) as img:
            img.load()
            return from_pil(img, path) if img.mode in DEEP_MODES else img
    except DataError:
        raise
    except _DECODE_ERRORS as e:
        raise unreadable(path, e) from e


def stored_bits(path: str | os.PathLike) -> int:
    """Bits per value stored in the file at `path` (8 for ordinary images), read from its header."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".npy":
            return 8 * np.load(path, mmap_mode="r", allow_pickle=False).dtype.itemsize
        if suffix == ".png":
            return _png_header(path)[0]
        if suffix in TIFF_SUFFIXES:
            try:
                with Image.open(path) as img:
                    return max(_tiff_bits(img))
            except _DECODE_ERRORS:
                with _tifffile(path).TiffFile(path) as tif:
                    return 8 * tif.pages[0].dtype.itemsize
    except DataError:
        raise
    except _DECODE_ERRORS as e:
        raise unreadable(path, e) from e
    return 8


def needs_float_path(path: str | os.PathLike) -> str | None:
    """What makes the file at `path` a FloatImage ('a 16-bit PNG', ...), from its header; None for
    a file that decodes to an 8-bit PIL image."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return "a NumPy array"
    bits = stored_bits(path)
    if bits > 8:
        return f"a {bits}-bit {suffix[1:].upper()}"
    if suffix in TIFF_SUFFIXES and _tiff_needs_tifffile(path):
        return "a TIFF with several pages or channels"
    return None


def from_pil(img: Image.Image, path: str | os.PathLike = "") -> FloatImage:
    """A FloatImage of a PIL image read from `path`, with its channels as stored (gray, gray and
    alpha, RGB or RGBA; a palette as RGB or RGBA)."""
    if img.mode in DEEP_MODES:
        return _float_image(_pil_values(img, str(path)), str(path))
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        keeps_alpha = "A" in img.mode or "transparency" in img.info
        img = img.convert("RGBA" if keeps_alpha else "L" if img.mode == "1" else "RGB")
    return _float_image(np.asarray(img), str(path))


def find_unreadable(paths: list[str]) -> list[tuple[str, str]]:
    """(path, reason) for every file in `paths` that does not decode."""
    bad = []
    for p in paths:
        try:
            load_image(p)
        except DataError as e:
            bad.append((p, str(e.__cause__ or e)))
    return bad


# -- values onto [0, 1] ----------------------------------------------------------------------------
def _float_image(values: np.ndarray, path: str) -> FloatImage:
    """A FloatImage of (H, W) or (H, W, C) `values`, mapped onto [0, 1] by their type."""
    if values.ndim == 2:
        values = values[:, :, None]
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    if values.dtype == np.uint8:
        pixels = values.astype(np.float32) / 255
    elif values.dtype == np.uint16:
        pixels = values.astype(np.float32) / 65535
    elif values.dtype == np.bool_:
        pixels = values.astype(np.float32)
    elif np.issubdtype(values.dtype, np.floating):
        pixels = values.astype(np.float32)
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
            raise DataError(f"{path} holds float values from {np.nanmin(pixels):g} to {np.nanmax(pixels):g}"
                            f"{' and NaN or infinity' if not np.isfinite(pixels).all() else ''}; float data must "
                            f"lie in [0, 1]: rescale it, or store it as uint8 (0..255) or uint16 (0..65535)")
    else:
        raise DataError(f"{path} holds {values.dtype} values; store uint8 (0..255), uint16 (0..65535) "
                        f"or float (0..1) data")
    return FloatImage(np.ascontiguousarray(pixels), path, 8 * values.dtype.itemsize)


def _pil_values(img: Image.Image, path: str) -> np.ndarray:
    values = np.asarray(img)
    if img.mode == "F":
        return values
    # 'I' (32-bit) is how older Pillow opens 16-bit PNGs: its values are 16-bit ones
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(f"{path} holds 32-bit integer values beyond 0..65535; store uint16 (0..65535) "
                        f"or float (0..1) data")
    return values.astype(np.uint16)


# -- NumPy -----------------------------------------------------------------------------------------
def read_npy(path: str) -> np.ndarray:
    """The array of a .npy image as (H, W) or (H, W, C); DataError for one that is not an image."""
    try:
        values = np.load(path, allow_pickle=False)
    except ValueError as e:  # pickled objects or a damaged header
        raise unreadable(path, e) from e
    if values.ndim == 3 and values.shape[0] < values.shape[2]:
        values = values.transpose(1, 2, 0)
    if values.ndim not in (2, 3):
        raise DataError(f"{path} holds an array of shape {values.shape}; an image is (H, W), (H, W, C) or (C, H, W)")
    return values


# -- TIFF ------------------------------------------------------------------------------------------
def _tifffile(path: str):
    try:
        import tifffile
    except ImportError as e:
        raise DataError(f"{path} is a TIFF that PIL cannot read in full (several pages, 16-bit colour or many "
                        f"samples); reading it needs tifffile ({e}): {_TIFF_INSTALL}") from e
    return tifffile


def _tiff_bits(img: Image.Image) -> tuple[int, ...]:
    bits = img.tag_v2.get(258, (1,))  # BitsPerSample
    return bits if isinstance(bits, tuple) else (bits,)


def _tiff_needs_tifffile(path: str) -> bool:
    """Whether PIL would lose something of the TIFF at `path`: pages after the first, samples
    beyond its mode's channels, or values of more than 8 bits in more than one channel (PIL holds
    those as 8-bit RGB)."""
    try:
        with Image.open(path) as img:
            if getattr(img, "n_frames", 1) > 1 or img.tag_v2.get(277, 1) != len(img.getbands()):  # SamplesPerPixel
                return True
            return max(_tiff_bits(img)) > 8 and img.mode not in DEEP_MODES
    except _DECODE_ERRORS:
        return True  # layouts PIL does not know (float colour, many samples): tifffile may


def _read_tiff(path: str) -> np.ndarray:
    """(H, W, C) values of a TIFF: its pages as channels, or one page's samples or planes."""
    tifffile = _tifffile(path)
    try:
        with tifffile.TiffFile(path) as tif:
            pages = [(page.asarray(), page.axes) for page in tif.pages]
    except (tifffile.TiffFileError, *_DECODE_ERRORS) as e:
        raise unreadable(path, e) from e
    if len(pages) > 1:
        shapes = {values.shape for values, _ in pages}
        if len(shapes) > 1 or len(next(iter(shapes))) != 2:
            raise DataError(f"{path} has {len(pages)} pages of shapes {sorted(shapes)}; a TIFF with several "
                            f"pages holds one channel per page, all of one height and width")
        return np.stack([values for values, _ in pages], axis=2)
    values, axes = pages[0]
    if values.ndim == 3 and axes.startswith("S"):  # planar: (C, H, W)
        values = values.transpose(1, 2, 0)
    if values.ndim not in (2, 3):
        raise DataError(f"{path} holds an image of shape {values.shape} (axes {axes}); "
                        f"expected (H, W), (H, W, C) or (C, H, W)")
    return values


# -- 16-bit PNG --------------------------------------------------------------------------------------
def _png_header(path: str) -> tuple[int, int]:
    """(bit depth, colour type) of the PNG at `path`; (8, -1) for a file that is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return 8, -1
    return head[24], head[25]


def _read_png16(path: str) -> np.ndarray:
    """(H, W, C) uint16 values of a 16-bit PNG with colour or alpha (C = 2, 3 or 4).

    PIL opens these as 8-bit, from the high byte of each value. Its decoder is told to unpack other
    raw modes instead, still unfiltering and deinterlacing the PNG itself: gray and alpha (4 bytes
    a pixel) as 8-bit RGBA, whose bytes then pair up; RGB and RGBA twice, with the big-endian raw
    mode for the high bytes and the little-endian one, which on big-endian values gives the low."""
    def decode(rawmode_of) -> np.ndarray:
        with Image.open(path) as img:
            (codec, extents, offset, rawmode), *rest = img.tile
            if rest or rawmode not in ("LA;16B", "RGB;16B", "RGBA;16B"):
                raise DataError(f"{path}: this Pillow version decodes 16-bit PNGs with colour or alpha as "
                                f"{rawmode!r}, which pyi2i cannot read at 16 bits; save the image as a 16-bit TIFF")
            img.tile = [(codec, extents, offset, rawmode_of(rawmode))]
            img.load()
            return np.asarray(img).astype(np.uint16)

    if _png_header(path)[1] == 4:
        pairs = decode(lambda rawmode: "RGBA")
        return pairs[..., 0::2] << 8 | pairs[..., 1::2]
    return decode(lambda rawmode: rawmode) << 8 | decode(lambda rawmode: rawmode[:-1] + "L")


def write_png16(values: np.ndarray, file) -> None:
    """(H, W, C) uint16 with C in 1..4 (gray, gray and alpha, RGB, RGBA) as a 16-bit PNG into the
    binary file object `file`. PIL writes 16-bit grayscale only."""
    if values.dtype != np.uint16 or values.ndim != 3 or not 1 <= values.shape[2] <= 4:
        raise ValueError(f"expected (H, W, 1..4) uint16 values, got {values.dtype} {values.shape}")
    h, w, c = values.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = values.astype(">u2").reshape(h, w * c).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    file.write(_PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
