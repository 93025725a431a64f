"""Weights in the original release's format (`*_net_G.pth`): positional nn.Sequential key names.

pyi2i's modules are laid out differently (fused norm+activation modules shift positions), so
conversion goes layer by layer through each network's `original_layers()`: a list of
(original key prefix, module) for every module with state, in order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pyi2i.errors import UserError

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


def infer_generator_options(state: dict[str, torch.Tensor]) -> dict:
    """netG, ngf, input_nc, output_nc, norm and dropout of a generator saved in the original format,
    read off its key names and shapes (the original release saves no configuration)."""
    state = strip_wrapper_prefixes(state)
    if "model.model.0.weight" in state:  # U-Net: nested skip blocks, 1.model. then 3.model. per level
        deepest = max(key.count(".model.") for key in state)
        netG = {8: "unet_256", 7: "unet_128"}.get(deepest)
        first, last = state["model.model.0.weight"], state["model.model.3.weight"]
        ngf, input_nc, output_nc = first.shape[0], first.shape[1], last.shape[1]
        batch = "model.model.1.model.2.weight" in state
        instance = "model.model.0.bias" in state
        dropout = None  # not visible in the keys
        depth, unit = deepest, "downsamplings"
    elif "model.1.weight" in state:  # ResNet
        blocks = {int(key.split(".")[1]) for key in state if ".conv_block." in key}
        depth, unit = len(blocks), "residual blocks"
        netG = {9: "resnet_9blocks", 6: "resnet_6blocks"}.get(depth)
        first, last = state["model.1.weight"], state.get(f"model.{17 + depth}.weight")
        if last is None:
            raise IncompatibleCheckpoint(f"the ResNet generator in the file has no last conv at model.{17 + depth}")
        ngf, input_nc, output_nc = first.shape[0], first.shape[1], last.shape[0]
        batch = "model.2.weight" in state
        instance = "model.1.bias" in state
        dropout = any(key.startswith("model.10.conv_block.6.") for key in state)
    else:
        raise IncompatibleCheckpoint("the file holds no ResNet or U-Net generator in the original release's "
                                     "layout (no 'model.1.weight' or 'model.model.0.weight' entry)")
    if netG is None:
        raise IncompatibleCheckpoint(f"the generator in the file has {depth} {unit}, which matches none of "
                                     "resnet_9blocks, resnet_6blocks, unet_256, unet_128")
    norm = "batch" if batch else "instance" if instance else "none"
    return dict(netG=netG, ngf=int(ngf), input_nc=int(input_nc), output_nc=int(output_nc), norm=norm,
                use_dropout=dropout)
