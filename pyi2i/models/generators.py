"""The two generators of the original release: ResNet (CycleGAN) and U-Net (pix2pix).

Each network lists its stateful layers against the positional key prefixes of the original
release's nn.Sequential (`original_layers()`), which is all checkpoint conversion needs.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pyi2i.models.layers import ConvNormAct, NormAct, conv_bias

PADDING_TYPES = ("reflect", "replicate", "zero")


def _pad(padding_type: str, p: int) -> tuple[nn.Module, int]:
    """A padding layer and the conv padding that goes with it ('zero' pads inside the conv)."""
    if padding_type == "reflect":
        return nn.ReflectionPad2d(p), 0
    if padding_type == "replicate":
        return nn.ReplicationPad2d(p), 0
    if padding_type == "zero":
        return nn.Identity(), p
    raise ValueError(f"padding_type must be one of {PADDING_TYPES}, got {padding_type!r}")


def _conv_layers(prefix: str, block: ConvNormAct, index: int) -> list[tuple[str, nn.Module]]:
    """A conv at position `index` of an original Sequential, its norm (if stateful) right after."""
    layers = [(f"{prefix}{index}", block.conv)]
    if block.norm_act.bn is not None:
        layers.append((f"{prefix}{index + 1}", block.norm_act.bn))
    return layers


class ResnetBlock(nn.Module):
    """x + [pad, conv 3x3, norm, ReLU, (dropout 0.5), pad, conv 3x3, norm](x); the second norm and
    the residual add are one fused op."""

    def __init__(self, dim: int, norm: str, use_dropout: bool, padding_type: str, impl: str):
        super().__init__()
        self.pad1, p = _pad(padding_type, 1)
        self.conv1 = ConvNormAct(nn.Conv2d(dim, dim, 3, padding=p, bias=conv_bias(norm)), norm, "relu", impl)
        self.dropout = nn.Dropout(0.5) if use_dropout else None
        self.pad2, _ = _pad(padding_type, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=p, bias=conv_bias(norm))
        self.norm2 = NormAct(dim, norm, "none", impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.pad1(x))
        if self.dropout is not None:
            h = self.dropout(h)
        return self.norm2(self.conv2(self.pad2(h)), residual=x)

    def original_layers(self, prefix: str) -> list[tuple[str, nn.Module]]:
        # original: [pad?, conv, norm, ReLU, dropout?, pad?, conv, norm]; 'zero' padding has no pad layers
        pad = 0 if isinstance(self.pad1, nn.Identity) else 1
        second = pad + 3 + (self.dropout is not None) + pad
        layers = _conv_layers(prefix, self.conv1, pad) + [(f"{prefix}{second}", self.conv2)]
        if self.norm2.bn is not None:
            layers.append((f"{prefix}{second + 1}", self.norm2.bn))
        return layers


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-output_nc, tanh.

    x: (N, input_nc, H, W) with H, W multiples of 4 -> (N, output_nc, H, W) in [-1, 1].
    """

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9, padding_type: str = "reflect", impl: str = "auto"):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        bias = conv_bias(norm)
        self.stem_pad = nn.ReflectionPad2d(3)
        self.stem = ConvNormAct(nn.Conv2d(input_nc, ngf, 7, bias=bias), norm, "relu", impl)
        self.down = nn.ModuleList(
            ConvNormAct(nn.Conv2d(ngf * 2**i, ngf * 2 ** (i + 1), 3, stride=2, padding=1, bias=bias), norm, "relu", impl)
            for i in range(2)
        )
        self.blocks = nn.Sequential(*(ResnetBlock(ngf * 4, norm, use_dropout, padding_type, impl) for _ in range(n_blocks)))
        self.up = nn.ModuleList(
            ConvNormAct(nn.ConvTranspose2d(ngf * 2 ** (2 - i), ngf * 2 ** (1 - i), 3, stride=2, padding=1,
                                           output_padding=1, bias=bias), norm, "relu", impl)
            for i in range(2)
        )
        self.head_pad = nn.ReflectionPad2d(3)
        self.head = nn.Conv2d(ngf, output_nc, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.stem_pad(x))
        for layer in self.down:
            h = layer(h)
        h = self.blocks(h)
        for layer in self.up:
            h = layer(h)
        return torch.tanh(self.head(self.head_pad(h)))

    def original_layers(self) -> list[tuple[str, nn.Module]]:
        # original `model`: [pad, conv, norm, ReLU] + 2 x [conv, norm, ReLU] + blocks
        #                   + 2 x [convT, norm, ReLU] + [pad, conv, tanh]
        n = len(self.blocks)
        layers = _conv_layers("model.", self.stem, 1)
        for i, block in enumerate(self.down):
            layers += _conv_layers("model.", block, 4 + 3 * i)
        for k, block in enumerate(self.blocks):
            layers += block.original_layers(f"model.{10 + k}.conv_block.")
        for i, block in enumerate(self.up):
            layers += _conv_layers("model.", block, 10 + n + 3 * i)
        return layers + [(f"model.{17 + n}", self.head)]


class UnetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip concatenation.

    The original release's down path starts with an in-place LeakyReLU, which rewrites the block's
    input before the skip concatenation, so the skip carries LeakyReLU(x). Here the parent applies
    that LeakyReLU fused with its down norm, and the block receives (and concatenates) the
    activated tensor: the same function, one pass fewer.
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None, submodule: "UnetBlock | None" = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", use_dropout: bool = False,
                 impl: str = "auto"):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        bias = conv_bias(norm)
        self.down_conv = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        # the next level's LeakyReLU, fused into this level's down norm (the outermost down has no norm)
        self.down_norm = None if innermost else NormAct(inner_nc, "none" if outermost else norm, "leaky_relu", impl)
        self.submodule = submodule
        self.up_conv = nn.ConvTranspose2d(inner_nc if innermost else inner_nc * 2, outer_nc, 4, stride=2, padding=1,
                                          bias=True if outermost else bias)
        self.up_norm = None if outermost else NormAct(outer_nc, norm, "none", impl)
        self.dropout = nn.Dropout(0.5) if use_dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down_conv(x)
        if self.down_norm is not None:
            h = self.down_norm(h)
        if self.submodule is not None:
            h = self.submodule(h)
        h = self.up_conv(torch.relu(h))
        if self.outermost:
            return torch.tanh(h)
        h = self.up_norm(h)
        if self.dropout is not None:
            h = self.dropout(h)
        return torch.cat([x, h], 1)

    def original_layers(self, prefix: str) -> list[tuple[str, nn.Module]]:
        # original block `model`: outermost [conv, sub, ReLU, convT, tanh];
        # middle [LReLU, conv, norm, sub, ReLU, convT, norm, dropout?]; innermost [LReLU, conv, ReLU, convT, norm]
        if self.outermost:
            return ([(f"{prefix}0", self.down_conv)] + self.submodule.original_layers(f"{prefix}1.model.")
                    + [(f"{prefix}3", self.up_conv)])
        if self.innermost:
            layers = [(f"{prefix}1", self.down_conv), (f"{prefix}3", self.up_conv)]
            up_norm_at = 4
        else:
            layers = [(f"{prefix}1", self.down_conv)]
            if self.down_norm.bn is not None:
                layers.append((f"{prefix}2", self.down_norm.bn))
            layers += self.submodule.original_layers(f"{prefix}3.model.") + [(f"{prefix}5", self.up_conv)]
            up_norm_at = 6
        if self.up_norm.bn is not None:
            layers.append((f"{prefix}{up_norm_at}", self.up_norm.bn))
        return layers


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` halvings (unet_256: 8, unet_128: 7), built from the innermost level out.

    x: (N, input_nc, H, W) with H, W multiples of 2**num_downs -> (N, output_nc, H, W) in [-1, 1].
    """

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "batch",
                 use_dropout: bool = False, impl: str = "auto"):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs num_downs >= 5, got {num_downs}")
        self.num_downs = num_downs
        kw = dict(norm=norm, impl=impl)
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **kw)
        block = UnetBlock(ngf * 4, ngf * 8, submodule=block, **kw)
        block = UnetBlock(ngf * 2, ngf * 4, submodule=block, **kw)
        block = UnetBlock(ngf, ngf * 2, submodule=block, **kw)
        self.model = UnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def original_layers(self) -> list[tuple[str, nn.Module]]:
        return self.model.original_layers("model.model.")
