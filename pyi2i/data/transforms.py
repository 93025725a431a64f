"""The preprocess modes of the original release: resize, crop, flip, then to [-1, 1].

The random choices of one sample are drawn first (`get_params`) and applied separately
(`apply_transform`), so that the two halves of an aligned pair get the same crop and flip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from pyi2i.data.images import DataError, to_tensor

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class TransformParams:
    crop_pos: tuple[int, int]  # (x, y) of the crop's top-left corner in the resized image
    flip: bool


def check_preprocess(opt) -> None:
    """Reject option combinations that cannot work, before any image is loaded."""
    if opt.preprocess not in PREPROCESS_MODES:
        raise ValueError(f"--preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {opt.preprocess!r}")
    resizes_then_crops = opt.preprocess in ("resize_and_crop", "scale_width_and_crop")
    if resizes_then_crops and opt.load_size < opt.crop_size:
        raise DataError(
            f"--load_size {opt.load_size} is smaller than --crop_size {opt.crop_size}: "
            f"--preprocess {opt.preprocess} resizes to load_size and then crops crop_size, "
            f"so load_size must be at least crop_size"
        )


def resized_size(opt, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) after the resize step of `opt.preprocess`, before any crop."""
    w, h = size
    if opt.preprocess == "resize_and_crop":
        return opt.load_size, opt.load_size
    if opt.preprocess in ("scale_width", "scale_width_and_crop"):
        if w == opt.load_size and h >= opt.crop_size:
            return w, h
        return opt.load_size, int(max(opt.load_size * h / w, opt.crop_size))
    if opt.preprocess == "none":
        # The generators halve the resolution twice, so sides must divide by 4.
        return max(4, int(round(w / 4) * 4)), max(4, int(round(h / 4) * 4))
    return w, h


def get_params(opt, size: tuple[int, int], rng: np.random.Generator,
               path: str | os.PathLike = "") -> TransformParams:
    """Draw the crop position and flip for an image of `size` (width, height) found at `path`."""
    new_w, new_h = resized_size(opt, size)
    if "crop" in opt.preprocess and (new_w < opt.crop_size or new_h < opt.crop_size):
        raise DataError(
            f"image {path} is {size[0]}x{size[1]} (width x height), {new_w}x{new_h} after "
            f"--preprocess {opt.preprocess}, smaller than --crop_size {opt.crop_size}. Use a smaller "
            f"--crop_size, or a mode that resizes first (--preprocess resize_and_crop or scale_width_and_crop)"
        )
    x = int(rng.integers(0, max(0, new_w - opt.crop_size) + 1))
    y = int(rng.integers(0, max(0, new_h - opt.crop_size) + 1))
    flip = bool(rng.random() > 0.5)
    return TransformParams(crop_pos=(x, y), flip=flip and not opt.no_flip)


def apply_transform(opt, img: Image.Image, params: TransformParams, *, grayscale: bool) -> torch.Tensor:
    """(C, H, W) float32 tensor in [-1, 1] of an RGB image; C = 1 with `grayscale`.

    Steps and their order follow the original: grayscale, resize (PIL bicubic), crop, flip.
    """
    if grayscale:
        img = img.convert("L")
    new_size = resized_size(opt, img.size)
    if new_size != img.size:
        img = img.resize(new_size, Image.BICUBIC)
    if "crop" in opt.preprocess:
        x, y = params.crop_pos
        img = img.crop((x, y, x + opt.crop_size, y + opt.crop_size))
    if params.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(img)
