"""Triton backend of gan_loss for 'lsgan' and 'vanilla' (semantics and glue: pyi2i/ops/gan_loss.py;
device code: kernels/gan_loss.py, installed as pyi2i._triton.gan_loss). The kernels of the operators

    pyi2i::gan_loss_fwd(pred, target_is_real, mode) -> loss        () fp32
    pyi2i::gan_loss_bwd(grad, pred, target_is_real, mode) -> dpred  like pred

pred comes from the glue dense. The forward reduces to one fp32 partial per program and then sums
those; the backward is its own pass over pred (see the kernels' docstring for why).
"""

from __future__ import annotations

import functools

import torch

from pyi2i.ops._triton_util import device_guard, flat_plan, kernels, mean_of_partials, unavailable_reason
from pyi2i.ops.gan_loss import FUSED_MODES as MODES
from pyi2i.ops.gan_loss import fused

__all__ = ["MODES", "gan_loss", "unavailable_reason"]

gan_loss = functools.partial(fused, backend="triton")  # see pyi2i.ops.gan_loss


def _target(target_is_real: bool) -> float:
    return 1.0 if target_is_real else 0.0


def fwd(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    numel = pred.numel()
    block, programs, num_warps = flat_plan(numel)
    partials = torch.empty(programs, dtype=torch.float32, device=pred.device)
    with device_guard(pred):
        kernels("gan_loss").gan_loss_fwd_kernel[(programs,)](
            pred, partials, numel, TARGET=_target(target_is_real), MODE=mode, BLOCK=block, num_warps=num_warps)
    return mean_of_partials(partials, numel)


def bwd(grad: torch.Tensor, pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    numel = pred.numel()
    dpred = torch.empty_like(pred)
    block, programs, num_warps = flat_plan(numel)
    with device_guard(pred):
        kernels("gan_loss").gan_loss_bwd_kernel[(programs,)](
            grad, pred, dpred, numel, 1.0 / numel,
            TARGET=_target(target_is_real), MODE=mode, BLOCK=block, num_warps=num_warps)
    return dpred
