"""Networks of pix2pix and CycleGAN, built by name as in the original release."""

from __future__ import annotations

import torch.nn as nn

from pyi2i.models.discriminators import NLayerDiscriminator, PixelDiscriminator
from pyi2i.models.generators import ResnetGenerator, UnetGenerator
from pyi2i.models.layers import INIT_TYPES, NORMS, init_weights

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
DISCRIMINATORS = ("basic", "n_layers", "pixel")


def define_G(netG: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
             use_dropout: bool = False, init_type: str = "normal", init_gain: float = 0.02,
             impl: str = "auto", init: bool = True) -> nn.Module:
    """A generator by its original name, initialised (unless `init=False`)."""
    if netG.startswith("resnet_"):
        blocks = {"resnet_9blocks": 9, "resnet_6blocks": 6}.get(netG)
        net = blocks and ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, blocks, impl=impl)
    elif netG.startswith("unet_"):
        downs = {"unet_256": 8, "unet_128": 7}.get(netG)
        net = downs and UnetGenerator(input_nc, output_nc, downs, ngf, norm, use_dropout, impl=impl)
    else:
        net = None
    if net is None:
        raise ValueError(f"netG must be one of {GENERATORS}, got {netG!r}")
    return init_weights(net, init_type, init_gain) if init else net


def define_D(netD: str, input_nc: int = 3, ndf: int = 64, n_layers_D: int = 3, norm: str = "batch",
             init_type: str = "normal", init_gain: float = 0.02, impl: str = "auto", init: bool = True) -> nn.Module:
    """A discriminator by its original name, initialised (unless `init=False`)."""
    if netD == "basic":
        net = NLayerDiscriminator(input_nc, ndf, 3, norm, impl)
    elif netD == "n_layers":
        net = NLayerDiscriminator(input_nc, ndf, n_layers_D, norm, impl)
    elif netD == "pixel":
        net = PixelDiscriminator(input_nc, ndf, norm, impl)
    else:
        raise ValueError(f"netD must be one of {DISCRIMINATORS}, got {netD!r}")
    return init_weights(net, init_type, init_gain) if init else net


__all__ = [
    "DISCRIMINATORS", "GENERATORS", "INIT_TYPES", "NORMS", "NLayerDiscriminator", "PixelDiscriminator",
    "ResnetGenerator", "UnetGenerator", "define_D", "define_G", "init_weights",
]
