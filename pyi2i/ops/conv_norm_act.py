"""The PatchGAN discriminator's block: 4x4 convolution -> instance norm -> LeakyReLU(0.2).

    out = leaky_relu(instance_norm(conv2d(x, weight, bias, stride, padding=1)), 0.2)

with an instance norm without affine parameters (the PatchGAN's `--norm instance`). Fusing the
norm and activation after the convolution lets backward keep the convolution output alone, where
the unfused block also keeps the normalised activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops._dispatch import select
from pyi2i.ops.norm_act import _instance_norm_act_ref

PADDING = 1  # with the 4x4 kernel: stride 2 halves H and W, stride 1 shrinks them by one
EPS = 1e-5  # nn.InstanceNorm2d's default, as in the original release


def _conv_norm_act_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 2,
    upcast: bool = False,
) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` computes in fp32 and returns x's dtype."""
    dtype = x.dtype
    if upcast:
        x, weight = x.float(), weight.float()
        bias = None if bias is None else bias.float()
    y = F.conv2d(x, weight, bias, stride=stride, padding=PADDING)
    return _instance_norm_act_ref(y, act="leaky_relu", eps=EPS).to(dtype)


def conv_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int,
    impl: str = "auto",
) -> torch.Tensor:
    """Convolution (padding 1), instance norm without affine, LeakyReLU(0.2).

    x:      (N, C_in, H, W), NCHW or channels_last; fp32, fp16 or bf16.
    weight: (C_out, C_in, 4, 4) in the PatchGAN (any kernel size works); bias: (C_out,) or None.
    stride: 2 (downsampling layers) or 1 (the last two layers).
    Returns (N, C_out, H_out, W_out) in the convolution's memory format.
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"conv_norm_act expects 4-D x and weight, got {tuple(x.shape)} and {tuple(weight.shape)}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight expects {weight.shape[1]} input channels, x has {x.shape[1]}")
    fn = select("conv_norm_act", impl, x, _conv_norm_act_ref)
    return fn(x, weight, bias, stride)
