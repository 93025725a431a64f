"""The colorization layout of the original release: colour images in DATAROOT/PHASE/, each split into
its lightness L (the generator's input) and its colour ab (the target), in CIE Lab.

Preprocessing (resize, crop, flip) is that of the other layouts, drawn from (seed, epoch, index),
and happens on the RGB image before the conversion, as in the original. L and ab are scaled as
there: A = L / 50 - 1 in [-1, 1], B = ab / 110.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pyi2i.data.datasets import ImageDataset, ImageSpec, SizeOf
from pyi2i.data.images import DataError
from pyi2i.data.lab import rgb_to_l_ab
from pyi2i.data.transforms import get_params
from pyi2i.registry import register_dataset

if TYPE_CHECKING:
    from pyi2i.config import DataConfig

# What the dataset gives, whatever the options: L in, ab out, and no way to swap them.
INPUT_NC, OUTPUT_NC, DIRECTION = 1, 2, "AtoB"


@register_dataset("colorization")
class ColorizationDataset(ImageDataset):
    """{'A': L (1, H, W), 'B': ab (2, H, W), 'A_paths': path, 'B_paths': the same path} per colour
    image of DATAROOT/PHASE/."""

    def __init__(self, data: DataConfig, **kw):
        super().__init__(data, **kw)
        asked = (self.input_nc, self.output_nc, data.direction)
        if asked != (INPUT_NC, OUTPUT_NC, DIRECTION):
            raise DataError(
                f"--dataset_mode colorization turns each image into its lightness (1 channel) and its colour "
                f"(2 channels): it needs --input_nc {INPUT_NC} --output_nc {OUTPUT_NC} --direction {DIRECTION}, "
                f"got --input_nc {asked[0]} --output_nc {asked[1]} --direction {asked[2]}")
        folder = os.path.join(data.dataroot, data.phase)
        self.paths = self.find_images(
            folder, f"expected {data.phase}/ under DATAROOT holding colour images for --dataset_mode colorization")

    def __len__(self) -> int:
        return len(self.paths)

    def specs(self, index: int, size_of: SizeOf) -> dict[str, ImageSpec]:
        path = self.paths[index]
        params = get_params(self.data, size_of(path), self.rng(index), path)
        return {"A": ImageSpec(path, None, params, channels=3)}

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        # Converted in float64 from the preprocessed image, as scikit-image does for the original.
        rgb = (sample["A"].double() + 1.0) / 2.0
        L, ab = rgb_to_l_ab(rgb)
        path = sample["A_paths"]
        return {"A": L.float(), "B": ab.float(), "A_paths": path, "B_paths": path}
