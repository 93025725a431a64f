"""Instance normalisation fused with an activation and an optional residual add.

    out = residual + act(instance_norm(x) * weight + bias)

The building block of every pyi2i network with `--norm instance`: the ResNet generator's
norm+ReLU and its residual blocks' norm+add, the PatchGAN's norm+LeakyReLU(0.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops._dispatch import select

ACTIVATIONS = ("none", "relu", "leaky_relu")
LEAKY_RELU_SLOPE = 0.2  # the only slope the pix2pix/CycleGAN networks use


def activation(x: torch.Tensor, act: str) -> torch.Tensor:
    """The activation named `act` (one of ACTIVATIONS) applied to x."""
    if act == "relu":
        return F.relu(x)
    if act == "leaky_relu":
        return F.leaky_relu(x, LEAKY_RELU_SLOPE)
    if act == "none":
        return x
    raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")


def _instance_norm_act_ref(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    act: str = "none",
    eps: float = 1e-5,
    upcast: bool = False,
) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` computes in fp32 and returns x's dtype."""
    dtype = x.dtype
    if upcast:
        x = x.float()
        residual = None if residual is None else residual.float()
    y = F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    if y.requires_grad and x.device.type == "cpu" and x.shape[0] == 1:
        # PyTorch's CPU instance-norm backward gives wrong input gradients at N = 1 when the incoming
        # gradient is channels_last (whatever x's layout); an NCHW gradient gives the right ones.
        y.register_hook(lambda grad: grad.contiguous())
    y = activation(y, act)
    if residual is not None:
        y = residual + y
    return y.to(dtype)


def instance_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    residual: torch.Tensor | None = None,
    act: str = "none",
    eps: float = 1e-5,
    impl: str = "auto",
) -> torch.Tensor:
    """Per-(sample, channel) normalisation over H x W, then `act`, then `+ residual`.

    x:        (N, C, H, W), NCHW or channels_last; fp32, fp16 or bf16 (statistics in fp32).
    weight:   (C,) or None; bias: (C,) or None (affine instance norm).
    residual: like x, or None.
    act:      'none' | 'relu' | 'leaky_relu' (slope 0.2).
    Returns a tensor like x, in x's memory format.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
    if x.dim() != 4:
        raise ValueError(f"instance_norm_act expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} does not match x shape {tuple(x.shape)}")
    fn = select("instance_norm_act", impl, x, _instance_norm_act_ref)
    return fn(x, weight, bias, residual, act, eps)
