"""The 'cuda' backend of instance_norm_act: the C++/CUDA kernels in csrc/instance_norm_act/.

Runs on CPU tensors too (the C++ implementation). The forward saves x and the per-(n, c) mean and
rstd; backward recomputes the normalised input from them rather than saving it.
"""

from __future__ import annotations

import torch

from pyi2i.ops import _cuda_ext
from pyi2i.ops._cuda_ext import unavailable_reason

__all__ = ["instance_norm_act", "unavailable_reason"]


def instance_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    act: str,
    eps: float,
) -> torch.Tensor:
    """See pyi2i.ops.instance_norm_act. x is read in its layout (NCHW or channels_last); other
    strides are made NCHW-contiguous first."""
    memory_format = _cuda_ext.memory_format(x)
    x = x.contiguous(memory_format=memory_format)
    if residual is not None:
        residual = residual.contiguous(memory_format=memory_format)
    out, _, _ = _cuda_ext.ops().instance_norm_act_fwd(x, weight, bias, residual, act, eps)
    return out


def _fake_fwd(x, weight, bias, residual, act, eps):
    stats = x.new_empty(x.shape[0] * x.shape[1], dtype=torch.float32)
    return torch.empty_like(x), stats, torch.empty_like(stats)


def _fake_bwd(grad_out, x, weight, bias, mean, rstd, act):
    params = x.new_empty(x.shape[1], dtype=torch.float32)
    return torch.empty_like(x), params, torch.empty_like(params)


def _setup_context(ctx, inputs, output):
    x, weight, bias, residual, act, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.act = act
    ctx.has_residual = residual is not None


def _backward(ctx, grad_out, _grad_mean, _grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    grad_out = grad_out.contiguous(memory_format=_cuda_ext.memory_format(x))
    grad_x, grad_weight, grad_bias = _cuda_ext.ops().instance_norm_act_bwd(grad_out, x, weight, bias, mean, rstd, ctx.act)
    return (
        grad_x if ctx.needs_input_grad[0] else None,
        grad_weight.to(weight.dtype) if ctx.needs_input_grad[1] else None,
        grad_bias.to(bias.dtype) if ctx.needs_input_grad[2] else None,
        grad_out if ctx.has_residual and ctx.needs_input_grad[3] else None,
        None,
        None,
    )


_cuda_ext.register_op("instance_norm_act", _fake_fwd, _fake_bwd, _backward, _setup_context)
