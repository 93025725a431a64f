"""The 'cuda' backend of conv_norm_act: csrc/conv_norm_act/, through the glue in
pyi2i/ops/conv_norm_act.py.

The convolution runs through ATen (cuDNN on GPU), the norm and activation through the fused
instance-norm kernels. Backward keeps x, the weight, the convolution output y and y's per-(n, c)
mean and rstd, and recomputes the normalised activation from them; the norm output is not kept.
Runs on CPU tensors too.
"""

from __future__ import annotations

import functools

from pyi2i.ops._cuda_ext import unavailable_reason
from pyi2i.ops.conv_norm_act import fused

__all__ = ["conv_norm_act", "unavailable_reason"]

conv_norm_act = functools.partial(fused, backend="cuda")  # see pyi2i.ops.conv_norm_act
