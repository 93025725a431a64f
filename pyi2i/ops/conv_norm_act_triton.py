"""The 'triton' backend of conv_norm_act: PyTorch's convolution (cuDNN on a GPU), then the fused
Triton instance norm + LeakyReLU(0.2), so that the PatchGAN block runs fused where the C++/CUDA
extension is not built. Autograd of the convolution is PyTorch's; the norm's is the fused one,
which keeps the convolution output and its statistics, not the normalised activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops._triton_util import unavailable_reason
from pyi2i.ops.conv_norm_act import EPS, PADDING
from pyi2i.ops.norm_act import fused

__all__ = ["conv_norm_act", "unavailable_reason"]


def conv_norm_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """See pyi2i.ops.conv_norm_act. The convolution is the reference's own call, so autocast casts
    it as it does the reference's; the result is returned in x's dtype, as the reference does."""
    y = F.conv2d(x, weight, bias, stride=stride, padding=PADDING)
    return fused(y, None, None, None, "leaky_relu", EPS, "triton").to(x.dtype)
