"""The 'cuda' backend of conv_norm_act: csrc/conv_norm_act/, with its own autograd.

The convolution runs through ATen (cuDNN on GPU), the norm and activation through the fused
instance-norm kernels. Backward keeps x, the weight, the convolution output y and y's per-(n, c)
mean and rstd, and recomputes the normalised activation from them; the norm output is not kept.
Runs on CPU tensors too.
"""

from __future__ import annotations

import torch

from pyi2i.ops import _cuda_ext
from pyi2i.ops._cuda_ext import unavailable_reason
from pyi2i.ops.conv_norm_act import EPS, PADDING

__all__ = ["conv_norm_act", "unavailable_reason"]


def conv_norm_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """See pyi2i.ops.conv_norm_act."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        # Autocast would run the reference's convolution in low precision; do the same here.
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    out, _, _, _ = _cuda_ext.ops().conv_norm_act_fwd(x, weight, bias, stride, PADDING, EPS)
    return out


def _conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _fake_fwd(x, weight, bias, stride, padding, eps):
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    shape = (n, c_out, _conv_out_size(h, kh, stride, padding), _conv_out_size(w, kw, stride, padding))
    y = x.new_empty(shape).contiguous(memory_format=_cuda_ext.memory_format(x))
    stats = x.new_empty(n * c_out, dtype=torch.float32)
    return torch.empty_like(y), y, stats, torch.empty_like(stats)


def _fake_bwd(grad_out, x, weight, y, mean, rstd, stride, padding, has_bias, output_mask):
    return (
        torch.empty_like(x) if output_mask[0] else None,
        torch.empty_like(weight) if output_mask[1] else None,
        weight.new_empty(weight.shape[0]) if output_mask[2] else None,
    )


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, _ = inputs
    _, y, mean, rstd = output
    ctx.save_for_backward(x, weight, y, mean, rstd)
    ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None


def _backward(ctx, grad_out, *_unused_grads):
    x, weight, y, mean, rstd = ctx.saved_tensors
    grad_out = grad_out.contiguous(memory_format=_cuda_ext.memory_format(y))
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = _cuda_ext.ops().conv_norm_act_bwd(
        grad_out, x, weight, y, mean, rstd, ctx.stride, ctx.padding, ctx.has_bias, output_mask
    )
    return (*grads, None, None, None)


_cuda_ext.register_op("conv_norm_act", _fake_fwd, _fake_bwd, _backward, _setup_context)
