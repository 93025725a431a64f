"""Triton backend of l1_loss (semantics: pyi2i.ops.l1_loss; device code: kernels/l1_loss.py,
installed as pyi2i._triton.l1_loss).

    pyi2i::l1_loss_fwd(x, y) -> loss        () in the promoted dtype of x and y
    pyi2i::l1_loss_bwd(grad, x, y) -> dx    like x; dy = -dx

The forward reduces to one fp32 partial per program and then sums those; the backward is its own
pass over x and y (see the kernels' docstring for why). Only dx is written by a kernel: the
targets of pix2pix and CycleGAN's L1 terms are data, so dy is rarely wanted.
"""

from __future__ import annotations

import torch

from pyi2i.ops._triton_util import (
    check_floating,
    dense,
    device_guard,
    flat_plan,
    kernels,
    mean_of_partials,
    unavailable_reason,
)

__all__ = ["l1_loss", "unavailable_reason"]


def _same_order(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x in dense memory and y with x's strides, so one flat offset names the same element in both."""
    x = dense(x)
    if y.stride() != x.stride():
        y = torch.empty_like(x, dtype=y.dtype).copy_(y)
    return x, y


@torch.library.custom_op("pyi2i::l1_loss_fwd", mutates_args=())
def _fwd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _same_order(x, y)
    numel = x.numel()
    block, programs, num_warps = flat_plan(numel)
    partials = torch.empty(programs, dtype=torch.float32, device=x.device)
    with device_guard(x):
        kernels("l1_loss").l1_loss_fwd_kernel[(programs,)](x, y, partials, numel, BLOCK=block, num_warps=num_warps)
    return mean_of_partials(partials, numel, torch.promote_types(x.dtype, y.dtype))


@_fwd.register_fake
def _(x, y):
    return x.new_empty((), dtype=torch.promote_types(x.dtype, y.dtype))


@torch.library.custom_op("pyi2i::l1_loss_bwd", mutates_args=())
def _bwd(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _same_order(x, y)
    numel = x.numel()
    dx = torch.empty_like(x)
    block, programs, num_warps = flat_plan(numel)
    with device_guard(x):
        kernels("l1_loss").l1_loss_bwd_kernel[(programs,)](
            grad, x, y, dx, numel, 1.0 / numel, BLOCK=block, num_warps=num_warps)
    return dx


@_bwd.register_fake
def _(grad, x, y):
    return torch.empty_like(dense(x))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, y = ctx.saved_tensors
    dx = _bwd(grad, x, y)
    dy = -dx.to(y.dtype) if ctx.needs_input_grad[1] else None
    return (dx if ctx.needs_input_grad[0] else None), dy


torch.library.register_autograd("pyi2i::l1_loss_fwd", _backward, setup_context=_setup_context)


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean(|x - y|) over all elements of two tensors of one shape (any layout; fp32/fp16/bf16).
    Returns a scalar in their promoted dtype."""
    check_floating("x", x, x.device)
    check_floating("y", y, x.device)
    if x.shape != y.shape:
        raise ValueError(f"l1_loss needs tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() == 0:
        raise ValueError("l1_loss needs non-empty tensors")
    return _fwd(x, y)
