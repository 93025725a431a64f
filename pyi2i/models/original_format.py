"""Weights in the original release's format (`*_net_G.pth`): positional nn.Sequential key names.

pyi2i's modules are laid out differently (fused norm+activation modules shift positions), so
conversion goes layer by layer through each network's `original_layers()`: a list of
(original key prefix, module) for every module with state, in order.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from pyi2i.errors import UserError
from pyi2i.models.generators import ResnetGenerator, UnetGenerator

# Wrappers whose prefixes a user's file may carry: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# State that old releases saved for instance-norm layers, which have none.
_STRAY_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


class IncompatibleCheckpoint(UserError, ValueError):
    """A weights file does not fit the network it is being loaded into."""


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without any leading `module.` / `_orig_mod.` (in any order or number)."""
    out = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def to_original(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's state under the original release's key names (tensors shared, not copied)."""
    return {f"{prefix}.{name}": tensor
            for prefix, module in net.original_layers()
            for name, tensor in module.state_dict().items()}


def from_original(net: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load a state dict in the original format into `net` (in place, exact copies).

    Raises IncompatibleCheckpoint naming the first layer that is missing or has another shape,
    and any keys left over, with what to check.
    """
    state = strip_wrapper_prefixes(state)
    used = set()
    for prefix, module in net.original_layers():
        for name, expected in module.state_dict().items():
            key = f"{prefix}.{name}"
            if key not in state:
                raise IncompatibleCheckpoint(
                    f"{source}: no entry {key!r} for layer {prefix} ({module}). The file was saved from a "
                    "different network: check --netG/--netD, --norm, --ngf/--ndf, --no_dropout and the channel counts.")
            value = state[key]
            if value.shape != expected.shape:
                raise IncompatibleCheckpoint(
                    f"{source}: layer {prefix} ({module}) entry {name!r} has shape {tuple(value.shape)} in the file "
                    f"but {tuple(expected.shape)} in the network. Check --ngf/--ndf, --input_nc/--output_nc and --netG/--netD.")
            used.add(key)
    left = [k for k in state if k not in used and not k.endswith(_STRAY_NORM_STATS)]
    if left:
        raise IncompatibleCheckpoint(
            f"{source}: {len(left)} entries do not belong to this network, first {left[0]!r}. The file was saved "
            "from a different network: check --netG/--netD, --norm and --no_dropout.")
    with torch.no_grad():
        for prefix, module in net.original_layers():
            for name, tensor in module.state_dict().items():
                tensor.copy_(state[f"{prefix}.{name}"])


def generator_layout(netG: str) -> tuple[str, int]:
    """("resnet", residual blocks) or ("unet", downsamplings) from a generator name: the original
    release's four (resnet_9blocks, resnet_6blocks, unet_256, unet_128) and, for weights of other
    depths, resnet_<N>blocks and unet_<2**depth>."""
    match = re.fullmatch(r"resnet_(\d+)blocks|unet_(\d+)", netG)
    if match and match[1] is not None:
        return "resnet", int(match[1])
    if match and match[2] is not None:
        size = int(match[2])
        if size >= 32 and size & (size - 1) == 0:  # a power of two, at least the 5 levels a U-Net needs
            return "unet", size.bit_length() - 1
    raise ValueError(f"netG {netG!r} names no generator: expected resnet_<N>blocks or unet_<2**depth> "
                     "(resnet_9blocks, resnet_6blocks, unet_256, unet_128)")


def size_multiple(netG: str) -> int:
    """What height and width must be multiples of: 4 for a ResNet (two stride-2 levels), 2**depth for a U-Net."""
    kind, depth = generator_layout(netG)
    return 4 if kind == "resnet" else 2**depth


def build_generator(options: dict, impl: str = "auto") -> nn.Module:
    """An uninitialised generator from options as `infer_generator_options` returns them."""
    kind, depth = generator_layout(options["netG"])
    args = (options["input_nc"], options["output_nc"])
    if kind == "resnet":
        return ResnetGenerator(*args, options["ngf"], options["norm"], bool(options["use_dropout"]), depth, impl=impl)
    return UnetGenerator(*args, depth, options["ngf"], options["norm"], bool(options["use_dropout"]), impl=impl)


# The options that fix a generator's shapes, as the command line names them.
ARCHITECTURE_OPTIONS = ("netG", "ngf", "norm", "input_nc", "output_nc")


def apply_overrides(found: dict, given: dict, source: str) -> dict:
    """`found` (read off a file) with the options the user gave; an option that contradicts the file
    is an error, since the weights cannot be loaded into another architecture."""
    for key, value in given.items():
        if value is None:
            continue
        have = found.get(key)
        same = value == have or (key == "norm" and {value, have} == {"batch", "syncbatch"})
        if key in ARCHITECTURE_OPTIONS and have is not None and not same:
            raise IncompatibleCheckpoint(f"{source}: --{key} {value} contradicts the weights, which hold a generator "
                                         f"with {key} {have}; leave --{key} out to use the file's own")
    return {**found, **{k: v for k, v in given.items() if v is not None}}


def infer_generator_options(state: dict[str, torch.Tensor]) -> dict:
    """netG, ngf, input_nc, output_nc, norm and dropout of a generator saved in the original format,
    read off its key names and shapes (the original release saves no configuration).

    Any depth is recognised: a ResNet with N blocks is `resnet_<N>blocks`, a U-Net with d
    downsamplings `unet_<2**d>` (the original four keep their names)."""
    state = strip_wrapper_prefixes(state)
    if "model.model.0.weight" in state:  # U-Net: nested skip blocks, 1.model. then 3.model. per level
        depth = max(key.count(".model.") for key in state)
        netG = f"unet_{2**depth}"
        first, last = state["model.model.0.weight"], state.get("model.model.3.weight")
        if last is None or depth < 5:
            raise IncompatibleCheckpoint(f"the U-Net generator in the file has {depth} levels and "
                                         f"{'a' if last is not None else 'no'} last conv at model.model.3; "
                                         "a U-Net has at least 5 levels and that conv")
        ngf, input_nc, output_nc = first.shape[0], first.shape[1], last.shape[1]
        batch = "model.model.1.model.2.weight" in state
        instance = "model.model.0.bias" in state
        dropout = None  # not visible in the keys
    elif "model.1.weight" in state:  # ResNet
        blocks = {int(key.split(".")[1]) for key in state if ".conv_block." in key}
        depth = len(blocks)
        netG = f"resnet_{depth}blocks"
        first, last = state["model.1.weight"], state.get(f"model.{17 + depth}.weight")
        if last is None:
            raise IncompatibleCheckpoint(f"the ResNet generator in the file has no last conv at model.{17 + depth}")
        ngf, input_nc, output_nc = first.shape[0], first.shape[1], last.shape[0]
        batch = "model.2.weight" in state
        instance = "model.1.bias" in state
        # with dropout the block's second conv moves from position 5 to 6 (where batch norm has its 1-D weight)
        second = state.get("model.10.conv_block.6.weight")
        dropout = second is not None and second.dim() == 4
    else:
        raise IncompatibleCheckpoint("the file holds no ResNet or U-Net generator in the original release's "
                                     "layout (no 'model.1.weight' or 'model.model.0.weight' entry)")
    norm = "batch" if batch else "instance" if instance else "none"
    return dict(netG=netG, ngf=int(ngf), input_nc=int(input_nc), output_nc=int(output_nc), norm=norm,
                use_dropout=dropout)
