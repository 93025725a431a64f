"""Triton backend of l1_loss (semantics and glue: pyi2i/ops/l1_loss.py; device code:
kernels/l1_loss.py, installed as pyi2i._triton.l1_loss). The kernels of the operators

    pyi2i::l1_loss_fwd(x, y) -> loss            () fp32
    pyi2i::l1_loss_bwd(grad, x, y) -> (dx, dy)  both laid out like x (dense); dy = -dx

The glue passes x and y dense, of one dtype and with one set of strides; other strides are aligned
here too (a copy), so the operators stand alone. The forward reduces to
one fp32 partial per program and then sums those; the backward is its own pass over x and y (see
the kernels' docstring for why).
"""

from __future__ import annotations

import functools

import torch

from pyi2i.ops._layout import dense
from pyi2i.ops._triton_util import device_guard, flat_plan, kernels, mean_of_partials, unavailable_reason
from pyi2i.ops.l1_loss import fused

__all__ = ["l1_loss", "unavailable_reason"]

l1_loss = functools.partial(fused, backend="triton")  # see pyi2i.ops.l1_loss


def _same_order(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x in dense memory and y with x's strides, so one flat offset names the same element in both."""
    x = dense(x)
    if y.stride() != x.stride():
        y = torch.empty_like(x, dtype=y.dtype).copy_(y)
    return x, y


def fwd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _same_order(x, y)
    numel = x.numel()
    block, programs, num_warps = flat_plan(numel)
    partials = torch.empty(programs, dtype=torch.float32, device=x.device)
    with device_guard(x):
        kernels("l1_loss").l1_loss_fwd_kernel[(programs,)](x, y, partials, numel, BLOCK=block, num_warps=num_warps)
    return mean_of_partials(partials, numel)


def bwd(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _same_order(x, y)
    numel = x.numel()
    dx = torch.empty_like(x)
    block, programs, num_warps = flat_plan(numel)
    with device_guard(x):
        kernels("l1_loss").l1_loss_bwd_kernel[(programs,)](
            grad, x, y, dx, numel, 1.0 / numel, BLOCK=block, num_warps=num_warps)
    return dx, -dx
