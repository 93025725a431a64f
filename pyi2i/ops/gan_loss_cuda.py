"""The 'cuda' backend of gan_loss: the C++/CUDA reductions in csrc/loss_reduce/, through the glue in
pyi2i/ops/gan_loss.py. Runs on CPU tensors too (the C++ implementation)."""

from __future__ import annotations

import functools

from pyi2i.ops._cuda_ext import unavailable_reason
from pyi2i.ops.gan_loss import fused

__all__ = ["gan_loss", "unavailable_reason"]

gan_loss = functools.partial(fused, backend="cuda")  # see pyi2i.ops.gan_loss
