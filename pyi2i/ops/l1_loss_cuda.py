"""The 'cuda' backend of l1_loss: the C++/CUDA reductions in csrc/loss_reduce/, through the glue in
pyi2i/ops/l1_loss.py. Runs on CPU tensors too (the C++ implementation)."""

from __future__ import annotations

import functools

from pyi2i.ops._cuda_ext import unavailable_reason
from pyi2i.ops.l1_loss import fused

__all__ = ["l1_loss", "unavailable_reason"]

l1_loss = functools.partial(fused, backend="cuda")  # see pyi2i.ops.l1_loss
