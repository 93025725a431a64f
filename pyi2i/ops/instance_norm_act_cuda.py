"""The 'cuda' backend of instance_norm_act: the C++/CUDA kernels in csrc/instance_norm_act/, through
the glue in pyi2i/ops/norm_act.py. Runs on CPU tensors too (the C++ implementation)."""

from __future__ import annotations

import functools

from pyi2i.ops._cuda_ext import unavailable_reason
from pyi2i.ops.norm_act import fused

__all__ = ["instance_norm_act", "unavailable_reason"]

instance_norm_act = functools.partial(fused, backend="cuda")  # see pyi2i.ops.instance_norm_act
