"""The preprocess modes of the original release: resize, crop, flip, then to [-1, 1].

The random choices of one sample are drawn first (`get_params`) and applied separately
(`apply_transform`), so that the two halves of an aligned pair get the same crop and flip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from pyi2i.data.images import DataError, to_tensor

if TYPE_CHECKING:  # pyi2i.config reads this module's choices
    from pyi2i.config import DataConfig

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class TransformParams:
    crop_pos: tuple[int, int]  # (x, y) of the crop's top-left corner in the resized image
    flip: bool


def check_preprocess(data: DataConfig) -> None:
    """Reject option combinations that cannot work, before any image is loaded."""
    if data.preprocess not in PREPROCESS_MODES:
        raise ValueError(f"--preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {data.preprocess!r}")
    resizes_then_crops = data.preprocess in ("resize_and_crop", "scale_width_and_crop")
    if resizes_then_crops and data.load_size < data.crop_size:
        raise DataError(
            f"--load_size {data.load_size} is smaller than --crop_size {data.crop_size}: "
            f"--preprocess {data.preprocess} resizes to load_size and then crops crop_size, "
            f"so load_size must be at least crop_size"
        )


def resized_size(data: DataConfig, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) after the resize step of `data.preprocess`, before any crop."""
    w, h = size
    if data.preprocess == "resize_and_crop":
        return data.load_size, data.load_size
    if data.preprocess in ("scale_width", "scale_width_and_crop"):
        if w == data.load_size and h >= data.crop_size:
            return w, h
        return data.load_size, int(max(data.load_size * h / w, data.crop_size))
    if data.preprocess == "none":
        # The generators halve the resolution twice, so sides must divide by 4.
        return max(4, int(round(w / 4) * 4)), max(4, int(round(h / 4) * 4))
    return w, h


def get_params(data: DataConfig, size: tuple[int, int], rng: np.random.Generator,
               path: str | os.PathLike = "") -> TransformParams:
    """Draw the crop position and flip for an image of `size` (width, height) found at `path`."""
    new_w, new_h = resized_size(data, size)
    if "crop" in data.preprocess and (new_w < data.crop_size or new_h < data.crop_size):
        raise DataError(
            f"image {path} is {size[0]}x{size[1]} (width x height), {new_w}x{new_h} after "
            f"--preprocess {data.preprocess}, smaller than --crop_size {data.crop_size}. Use a smaller "
            f"--crop_size, or a mode that resizes first (--preprocess resize_and_crop or scale_width_and_crop)"
        )
    x = int(rng.integers(0, max(0, new_w - data.crop_size) + 1))
    y = int(rng.integers(0, max(0, new_h - data.crop_size) + 1))
    flip = bool(rng.random() > 0.5)
    return TransformParams(crop_pos=(x, y), flip=flip and not data.no_flip)


def apply_transform(data: DataConfig, img: Image.Image, params: TransformParams, *, grayscale: bool) -> torch.Tensor:
    """(C, H, W) float32 tensor in [-1, 1] of an RGB image; C = 1 with `grayscale`.

    Steps and their order follow the original: grayscale, resize (PIL bicubic), crop, flip.
    """
    if grayscale:
        img = img.convert("L")
    new_size = resized_size(data, img.size)
    if new_size != img.size:
        img = img.resize(new_size, Image.BICUBIC)
    if "crop" in data.preprocess:
        x, y = params.crop_pos
        img = img.crop((x, y, x + data.crop_size, y + data.crop_size))
    if params.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(img)
