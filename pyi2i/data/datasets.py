"""The three dataset layouts of the original release: aligned (pix2pix), unaligned (CycleGAN), single.

`--direction BtoA` is applied here: the returned 'A' is always the generator's input and 'B' its
target, so whatever consumes the samples never swaps them again. As in the original, the source
side is read with `input_nc` channels and the target side with `output_nc`.

Every random choice of a sample comes from a generator seeded with (seed, epoch, index), so a
sample does not depend on the number of loader workers, and a resumed run sees the same data.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
from torch.utils.data import Dataset

from pyi2i.data.decode import find_unreadable, load_image
from pyi2i.data.images import DataError, folder_contents, make_dataset
from pyi2i.data.transforms import TransformParams, apply_transform, check_preprocess, get_params
from pyi2i.registry import DATASETS, register_dataset

if TYPE_CHECKING:  # pyi2i.config reads this package's choices
    from pyi2i.config import DataConfig

log = logging.getLogger(__name__)

SizeOf = Callable[[str], "tuple[int, int]"]  # (width, height) of the image stored at a path


@dataclass(frozen=True)
class ImageSpec:
    """One image of a sample, before any pixel is touched: the file, the part of its image to use,
    and the augmentation. Every loader renders these same specs, so whichever one is used, a seed
    gives the same files, crops and flips."""

    path: str
    box: tuple[int, int, int, int] | None  # (left, top, right, bottom) of the file's image; None: all
    params: TransformParams
    channels: int  # read with this many: 1 is grayscale, 3 RGB


class ImageDataset(Dataset):
    """What the three layouts share: options, file discovery with checks, and per-sample randomness.

    `input_nc` and `output_nc` are the channels of the generator's input and output: the source
    side is read with the first and the target side with the second."""

    def __init__(self, data: DataConfig, *, input_nc: int = 3, output_nc: int = 3, seed: int = 0):
        check_preprocess(data)
        self.data = data
        self.input_nc, self.output_nc, self.seed = input_nc, output_nc, seed
        self.epoch = 0
        self.skipped: list[tuple[str, str]] = []
        self.btoa = data.direction == "BtoA"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        # Without this, `for sample in dataset` would never end on the unaligned layout, whose
        # indices wrap around instead of raising IndexError.
        return (self[i] for i in range(len(self)))

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def find_images(self, folder: str, layout: str) -> list[str]:
        """Image paths in `folder`; DataError, stating `layout`, if there are none to use."""
        if not os.path.isdir(folder):
            raise DataError(f"folder {folder} not found: {layout} ({folder_contents(self.data.dataroot)})")
        paths = make_dataset(folder, self.data.max_dataset_size)
        if self.data.skip_bad_images:
            bad = find_unreadable(paths)
            if bad:
                log.warning("skipping %d unreadable image(s) in %s, first: %s", len(bad), folder, bad[0][0])
                bad_paths = {p for p, _ in bad}
                paths = [p for p in paths if p not in bad_paths]
                self.skipped.extend(bad)
        if not paths:
            raise DataError(f"no readable images (.png, .jpg, ...) in {folder}: {layout}")
        return paths

    def channels(self, side: str) -> int:
        return self.input_nc if side == "A" else self.output_nc

    def specs(self, index: int, size_of: SizeOf) -> dict[str, ImageSpec]:
        """{'A': spec, 'B': spec} ('A' alone for the single layout) of sample `index`."""
        raise NotImplementedError

    def files(self) -> list[str]:
        """Every file the dataset reads."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        images = {}

        def size_of(path: str) -> tuple[int, int]:
            if path not in images:
                images[path] = load_image(path)
            return images[path].size

        sample = {}
        for side, spec in self.specs(index, size_of).items():
            img = images[spec.path] if spec.box is None else images[spec.path].crop(spec.box)
            sample[side] = apply_transform(self.data, img, spec.params, channels=spec.channels, path=spec.path)
            sample[f"{side}_paths"] = spec.path
        return sample


@register_dataset("aligned")
class AlignedDataset(ImageDataset):
    """Pairs stored as one image, A on the left half and B on the right; both get one crop and flip."""

    def __init__(self, data: DataConfig, **kw):
        super().__init__(data, **kw)
        folder = os.path.join(data.dataroot, data.phase)
        self.paths = self.find_images(
            folder, f"expected {data.phase}/ under DATAROOT holding A|B side-by-side images "
                    f"for --dataset_mode aligned")

    def __len__(self) -> int:
        return len(self.paths)

    def files(self) -> list[str]:
        return self.paths

    def specs(self, index: int, size_of: SizeOf) -> dict[str, ImageSpec]:
        path = self.paths[index]
        w, h = size_of(path)
        w2 = w // 2
        left, right = (0, 0, w2, h), (w2, 0, w, h)
        # Drawn from the left half as in the original: it is the narrower one when w is odd,
        # so the crop fits both halves.
        params = get_params(self.data, (w2, h), self.rng(index), path)
        a, b = (right, left) if self.btoa else (left, right)
        return {"A": ImageSpec(path, a, params, self.channels("A")), "B": ImageSpec(path, b, params, self.channels("B"))}


@register_dataset("unaligned")
class UnalignedDataset(ImageDataset):
    """Two unpaired folders; each trainA image meets a random trainB image (the one at the same index
    with serial_batches). As in the original release, trainA is the one read in order whatever the
    direction; BtoA then swaps the two sides of the sample."""

    def __init__(self, data: DataConfig, **kw):
        super().__init__(data, **kw)
        layout = (f"expected {data.phase}A/ and {data.phase}B/ under DATAROOT "
                  f"for --dataset_mode unaligned")
        self.a_paths = self.find_images(os.path.join(data.dataroot, data.phase + "A"), layout)
        self.b_paths = self.find_images(os.path.join(data.dataroot, data.phase + "B"), layout)

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def files(self) -> list[str]:
        return self.a_paths + self.b_paths

    def specs(self, index: int, size_of: SizeOf) -> dict[str, ImageSpec]:
        rng = self.rng(index)
        a_path = self.a_paths[index % len(self.a_paths)]
        if self.data.serial_batches:
            b_path = self.b_paths[index % len(self.b_paths)]
        else:
            b_path = self.b_paths[int(rng.integers(0, len(self.b_paths)))]
        a_params = get_params(self.data, size_of(a_path), rng, a_path)
        b_params = get_params(self.data, size_of(b_path), rng, b_path)
        if self.btoa:
            (a_path, a_params), (b_path, b_params) = (b_path, b_params), (a_path, a_params)
        return {"A": ImageSpec(a_path, None, a_params, self.channels("A")),
                "B": ImageSpec(b_path, None, b_params, self.channels("B"))}


@register_dataset("single")
class SingleDataset(ImageDataset):
    """Every image under DATAROOT itself, one domain, for translating with a trained generator."""

    def __init__(self, data: DataConfig, **kw):
        super().__init__(data, **kw)
        self.paths = self.find_images(data.dataroot, "expected images in DATAROOT for --dataset_mode single")

    def __len__(self) -> int:
        return len(self.paths)

    def files(self) -> list[str]:
        return self.paths

    def specs(self, index: int, size_of: SizeOf) -> dict[str, ImageSpec]:
        path = self.paths[index]
        params = get_params(self.data, size_of(path), self.rng(index), path)
        return {"A": ImageSpec(path, None, params, self.channels("A"))}


DATASET_MODES = ("aligned", "unaligned", "single")  # the built-in layouts; plug-ins add more


def create_dataset(data: DataConfig, *, input_nc: int = 3, output_nc: int = 3, seed: int = 0) -> ImageDataset:
    """The dataset `data.dataset_mode` names, with its files found and checked; its images have
    `input_nc` channels on the source side and `output_nc` on the target side, and its random
    choices follow `seed`."""
    return DATASETS.get(data.dataset_mode)(data, input_nc=input_nc, output_nc=output_nc, seed=seed)
