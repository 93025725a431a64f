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

from pyi2i.data.decode import DEEP_MODES, FloatImage, from_pil
from pyi2i.data.images import DataError, to_rgb, to_tensor

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


def apply_transform(data: DataConfig, img: Image.Image | FloatImage, params: TransformParams, *,
                    channels: int, path: str | os.PathLike = "") -> torch.Tensor:
    """(channels, H, W) float32 tensor in [-1, 1] of an image as `load_image` gives it from `path`.

    Steps and their order follow the original: channels (grayscale), resize (bicubic), crop, flip.
    """
    crop = None
    if "crop" in data.preprocess:
        x, y = params.crop_pos
        crop = (x, y, x + data.crop_size, y + data.crop_size)
    return to_network(img, channels, size=resized_size(data, img.size), crop=crop, flip=params.flip, path=path)


def to_network(img: Image.Image | FloatImage, channels: int, *, size: tuple[int, int] | None = None,
               crop: tuple[int, int, int, int] | None = None, flip: bool = False,
               path: str | os.PathLike = "") -> torch.Tensor:
    """(channels, H, W) float32 in [-1, 1]: `img` (read from `path`) with `channels` channels,
    resized to `size` (width, height), cropped to the box `crop` of the resized image, and mirrored
    if `flip`.

    An 8-bit PIL image read with 1 or 3 channels takes the original's steps, bit for bit: PIL's
    convert, bicubic resize, crop and flip on 8-bit values. Any other image (more bits, other
    channel counts) takes the same steps on float32 values, PIL's bicubic filter per channel.
    """
    if isinstance(img, Image.Image) and img.mode not in DEEP_MODES and channels in (1, 3):
        img = to_rgb(img)
        if channels == 1:
            img = img.convert("L")
        if size is not None and size != img.size:
            img = img.resize(size, Image.BICUBIC)
        if crop is not None:
            img = img.crop(crop)
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(img)
    if isinstance(img, Image.Image):
        img = from_pil(img, path)
    pixels = img.with_channels(channels)
    if size is not None and size != img.size:
        pixels = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c])).resize(size, Image.BICUBIC))
                           for c in range(channels)], axis=2)
    if crop is not None:
        left, top, right, bottom = crop
        pixels = pixels[top:bottom, left:right]
    if flip:
        pixels = pixels[:, ::-1]
    # bicubic overshoots at edges; the 8-bit path clips there too
    values = torch.from_numpy(np.clip(pixels, 0, 1).transpose(2, 0, 1).copy())
    return values.mul(2).sub(1)
