"""The 'cuda' backend of l1_loss: the C++/CUDA reductions in csrc/loss_reduce/.

Runs on CPU tensors too (the C++ implementation).
"""

from __future__ import annotations

import torch

from pyi2i.ops import _cuda_ext
from pyi2i.ops._cuda_ext import unavailable_reason

__all__ = ["l1_loss", "unavailable_reason"]


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """See pyi2i.ops.l1_loss. x and y are read in place when dense with equal strides, else both
    are made contiguous."""
    x = _cuda_ext.dense(x)
    if any(n > 1 and sx != sy for n, sx, sy in zip(x.shape, x.stride(), y.stride())):
        x, y = x.contiguous(), y.contiguous()
    return _cuda_ext.ops().l1_loss_fwd(x, y)


def _fake_fwd(x, y):
    return x.new_empty(())


def _fake_bwd(grad, x, y):
    return torch.empty_like(x), torch.empty_like(y)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, y = ctx.saved_tensors
    grad_x, grad_y = _cuda_ext.ops().l1_loss_bwd(grad, x, y)
    return grad_x if ctx.needs_input_grad[0] else None, grad_y if ctx.needs_input_grad[1] else None


_cuda_ext.register_op("l1_loss", _fake_fwd, _fake_bwd, _backward, _setup_context)
