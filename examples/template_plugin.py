"""A template for a method and a dataset layout of one's own, as the original release's
models/template_model.py and data/template_dataset.py are: copy this file, rename the classes and
the names they register, and train with

    python -m pyi2i.train --plugin template_plugin --model l2pix2pix --lambda_L2 3 --dataroot ./datasets/facades

(the module must be importable: on PYTHONPATH, or installed with an entry point in the group
`pyi2i.methods` / `pyi2i.datasets`, which needs no --plugin).

The method here is pix2pix with an extra L2 term on the generator's output; the dataset is the
aligned layout with A and B swapped. Both are small on purpose: what matters is where things go.
"""

import dataclasses

import torch

import pyi2i
from pyi2i.config import Section, option
from pyi2i.data.datasets import AlignedDataset
from pyi2i.engine.pix2pix import Pix2Pix


@dataclasses.dataclass(frozen=True)
class L2Options(Section):
    """Options of --model l2pix2pix (the [method] table of config.toml)."""

    # Each field becomes an option (--lambda_L2), checked however it is given (min=0 here), and is
    # saved in config.toml and train_opt.txt.
    lambda_L2: float = option(7.0, "weight of an extra L2 loss between the fake and the real B", min=0)


@pyi2i.register_method("l2pix2pix")
class L2Pix2Pix(Pix2Pix):
    """pix2pix with an extra L2 term. A method from scratch subclasses pyi2i.engine.method.Method,
    builds self.nets (G, D, ...) and self.optimizers in __init__, calls self.finish_setup(), and
    implements step(batch) in its update order (see pix2pix.py and cyclegan.py)."""

    Options = L2Options  # the options reach the method as self.options
    # Defaults of the other options for this method, applied where the user gave none.
    defaults = dict(Pix2Pix.defaults, dataset_mode="flipped")
    # No built-in demo data: --dataroot is required.
    demo = None
    # The L2 weights this method trained with, for the tests.
    seen: list = []

    def l1_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        L2Pix2Pix.seen.append(self.options.lambda_L2)
        return super().l1_loss(x, y) + self.options.lambda_L2 * ((x - y) ** 2).mean()


@pyi2i.register_dataset("flipped")
class FlippedDataset(AlignedDataset):
    """Aligned pairs with A and B swapped. A layout from scratch subclasses
    pyi2i.data.datasets.ImageDataset: find its files in __init__, and implement __len__ and either
    specs(index, size_of) (which files, crops and flips a sample uses, so the DALI loader can render
    it too) or __getitem__ (then it is read with the torch loader)."""

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        return dict(sample, A=sample["B"], B=sample["A"], A_paths=sample["B_paths"], B_paths=sample["A_paths"])
