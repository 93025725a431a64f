"""The 'cuda' backend of gan_loss: the C++/CUDA reductions in csrc/loss_reduce/.

Runs on CPU tensors too (the C++ implementation). The constant target is never materialised.
"""

from __future__ import annotations

import torch

from pyi2i.ops import _cuda_ext
from pyi2i.ops._cuda_ext import unavailable_reason

__all__ = ["gan_loss", "unavailable_reason"]


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """See pyi2i.ops.gan_loss ('lsgan' or 'vanilla'). pred is read in its own dense layout."""
    return _cuda_ext.ops().gan_loss_fwd(_cuda_ext.dense(pred), target_is_real, mode)


def _fake_fwd(pred, target_is_real, mode):
    return pred.new_empty(())


def _fake_bwd(grad, pred, target_is_real, mode):
    return torch.empty_like(pred)


def _setup_context(ctx, inputs, output):
    pred, target_is_real, mode = inputs
    ctx.save_for_backward(pred)
    ctx.target_is_real, ctx.mode = target_is_real, mode


def _backward(ctx, grad):
    (pred,) = ctx.saved_tensors
    return _cuda_ext.ops().gan_loss_bwd(grad, pred, ctx.target_is_real, ctx.mode), None, None


_cuda_ext.register_op("gan_loss", _fake_fwd, _fake_bwd, _backward, _setup_context)
