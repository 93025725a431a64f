"""The discriminators of the original release: the PatchGAN (NLayer) and the 1x1 PixelGAN.

Both return raw logits (no sigmoid): the GAN losses take logits.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pyi2i import ops
from pyi2i.models.layers import ConvNormAct, conv_bias


class NLayerDiscriminator(nn.Module):
    """PatchGAN: conv4x4/2 -> LReLU, (n_layers - 1) x [conv4x4/2, norm, LReLU], conv4x4/1, norm, LReLU,
    conv4x4/1 -> 1. With n_layers = 3 each output sees a 70x70 patch (256x256 in -> 30x30 out).

    x: (N, input_nc, H, W) -> (N, 1, H', W') logits.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", impl: str = "auto"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers_D must be >= 1, got {n_layers}")
        bias = conv_bias(norm)
        self.first = nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1)
        self.blocks = nn.Sequential()
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            conv = nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias)
            self.blocks.append(ConvNormAct(conv, norm, "leaky_relu", impl))
        self.last = nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = ops.activation(self.first(x), "leaky_relu")
        return self.last(self.blocks(h))

    def original_layers(self) -> list[tuple[str, nn.Module]]:
        # original `model`: [conv, LReLU] + n_layers x [conv, norm, LReLU] + [conv]
        layers = [("model.0", self.first)]
        for i, block in enumerate(self.blocks):
            layers.append((f"model.{2 + 3 * i}", block.conv))
            if block.norm_act.bn is not None:
                layers.append((f"model.{3 + 3 * i}", block.norm_act.bn))
        return layers + [(f"model.{2 + 3 * len(self.blocks)}", self.last)]


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (PixelGAN): conv1x1 -> LReLU, conv1x1, norm, LReLU, conv1x1 -> 1.

    x: (N, input_nc, H, W) -> (N, 1, H, W) logits.
    """

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch", impl: str = "auto"):
        super().__init__()
        bias = conv_bias(norm)
        self.first = nn.Conv2d(input_nc, ndf, 1)
        self.block = ConvNormAct(nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm, "leaky_relu", impl)
        self.last = nn.Conv2d(ndf * 2, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.block(ops.activation(self.first(x), "leaky_relu")))

    def original_layers(self) -> list[tuple[str, nn.Module]]:
        # original `net`: [conv, LReLU, conv, norm, LReLU, conv]
        layers = [("net.0", self.first), ("net.2", self.block.conv)]
        if self.block.norm_act.bn is not None:
            layers.append(("net.3", self.block.norm_act.bn))
        return layers + [("net.5", self.last)]
