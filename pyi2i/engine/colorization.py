"""Colorization (the original release's `--model colorization`): pix2pix from the lightness L of an
image to its colour ab in CIE Lab, trained on `--dataset_mode colorization` data."""

from __future__ import annotations

import torch

from pyi2i.config import ConfigError
from pyi2i.data.lab import l_ab_to_rgb
from pyi2i.engine.pix2pix import Pix2Pix
from pyi2i.registry import register_method


@torch.no_grad()
def rgb_visuals(L: torch.Tensor, real_ab: torch.Tensor, fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
    """The original's three colorization images, (N, 3, H, W) float32 in [-1, 1] like every visual:
    'real_A' the input L (N, 1, H, W) as gray, 'real_B_rgb' and 'fake_B_rgb' the RGB images of L with
    the true and the predicted ab (N, 2, H, W)."""
    L = L.detach()
    return dict(real_A=L.float().expand(-1, 3, -1, -1),
                real_B_rgb=l_ab_to_rgb(L, real_ab.detach()) * 2 - 1,
                fake_B_rgb=l_ab_to_rgb(L, fake_ab.detach()) * 2 - 1)


@register_method("colorization")
class Colorization(Pix2Pix):
    """pix2pix with input_nc 1 (L) and output_nc 2 (ab); its visuals are `rgb_visuals`."""

    visual_names = ("real_A", "real_B_rgb", "fake_B_rgb")
    # The original's colorization model: pix2pix's defaults, one channel in and two out, its own data.
    defaults = dict(Pix2Pix.defaults, dataset_mode="colorization", input_nc=1, output_nc=2)
    demo = None  # colour photographs of one's own: the demo data's are flat renderings

    @staticmethod
    def test_visuals(G, sample):
        return rgb_visuals(sample["A"], sample["B"], G["G"](sample["A"]))

    def __init__(self, model, loss, optim, speed, device, options=None):
        if (model.input_nc, model.output_nc) != (1, 2):
            raise ConfigError(f"--model colorization maps L (1 channel) to ab (2 channels): it needs --input_nc 1 "
                              f"--output_nc 2, got --input_nc {model.input_nc} --output_nc {model.output_nc}")
        super().__init__(model, loss, optim, speed, device, options)

    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        losses = super().step(batch)
        lab = self.visuals
        self.visuals = rgb_visuals(lab["real_A"], lab["real_B"], lab["fake_B"])
        return losses
