"""Finding image files, decoding them to 8-bit RGB, and turning them into [-1, 1] tensors.

Files of more than 8 bits per value, or of other channel counts, are read by pyi2i.data.decode."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pyi2i.errors import UserError

# .npy arrays are read by pyi2i.data.decode, as images of any channel count
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".npy")

# Everything PIL and its plugins raise for a file they cannot decode (truncated, corrupt, not an image).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


class DataError(UserError, ValueError):
    """A problem with the user's data (layout, files, sizes), stated with the file and the fix."""


def is_image_file(name: str | os.PathLike) -> bool:
    return str(name).lower().endswith(IMG_EXTENSIONS)


def make_dataset(folder: str | os.PathLike, max_dataset_size: float = float("inf")) -> list[str]:
    """Image paths under `folder` (recursive, following links), sorted, at most `max_dataset_size`.

    Each real folder and each real file is visited once, whatever links lead to it: a link back to
    a parent (`trainA/again -> .`) would otherwise repeat the data until the path length limit.
    Truncation happens in directory-walk order before the final sort, as in the original release,
    so that a given `--max_dataset_size` selects the same files it does there.
    """
    seen_dirs, walked = set(), []
    for root, dirnames, fnames in os.walk(folder, followlinks=True):
        seen_dirs.add(os.path.realpath(root))
        # Pruned in place, so os.walk never enters a folder already visited (or due) through another path.
        keep = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(root, d))
            if real not in seen_dirs:
                seen_dirs.add(real)
                keep.append(d)
        dirnames[:] = keep
        walked.append((root, fnames))
    seen_files, images = set(), []
    for root, fnames in sorted(walked):
        for f in sorted(fnames):
            path = os.path.join(root, f)
            real = os.path.realpath(path)
            if is_image_file(f) and real not in seen_files:
                seen_files.add(real)
                images.append(path)
    return sorted(images[: int(min(max_dataset_size, len(images)))])


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB version of an image in any PIL mode."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale ('I' is how older Pillow opens 16-bit PNGs). PIL's own conversion clips
        # at 255, turning most of the image white, so scale 0..65535 onto 0..255 instead.
        return _gray_array_to_rgb(np.asarray(img, dtype=np.float64) / 257.0)
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        # Float images are usually stored in [0, 1]; anything wider is taken to be on the 8-bit scale.
        in_unit_range = values.size and values.min() >= 0.0 and values.max() <= 1.0
        return _gray_array_to_rgb(values * 255.0 if in_unit_range else values)
    # The original's convert('RGB') drops alpha (and palette transparency) without compositing onto
    # a background, so transparent pixels keep whatever colour they hold; faithful training needs the same.
    return img.convert("RGB")


def _gray_array_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def unreadable(path: str | os.PathLike, reason: object) -> DataError:
    return DataError(f"cannot read image {path}: {reason}. Re-save or remove the file, "
                     f"or pass --skip_bad_images to leave unreadable files out.")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Fully decode the image at `path` as 8-bit RGB, or raise DataError naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except _DECODE_ERRORS as e:
        raise unreadable(path, e) from e


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the image at `path`, read from its header alone; DataError if it has none."""
    try:
        with Image.open(path) as img:
            return img.size
    except _DECODE_ERRORS as e:
        raise unreadable(path, e) from e


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(C, H, W) float32 in [-1, 1] from an 8-bit 'L' or 'RGB' image, computed as (x / 255 - 0.5) / 0.5."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().float().div(255).sub(0.5).div(0.5)


def folder_contents(folder: str | os.PathLike) -> str:
    """A short listing of the subfolders of `folder`, for error messages about the expected layout."""
    path = Path(folder)
    if not path.is_dir():
        return f"{path} does not exist"
    subdirs = sorted(p.name + "/" for p in path.iterdir() if p.is_dir())
    return f"{path} holds " + (", ".join(subdirs) if subdirs else "no subfolders")
