"""Triton backend of gan_loss for 'lsgan' and 'vanilla' (semantics: pyi2i.ops.gan_loss; device
code: kernels/gan_loss.py, installed as pyi2i._triton.gan_loss).

    pyi2i::gan_loss_fwd(pred, target_is_real, mode) -> loss        () in pred's dtype
    pyi2i::gan_loss_bwd(grad, pred, target_is_real, mode) -> dpred  like pred

The forward reduces to one fp32 partial per program and then sums those; the backward is its own
pass over pred (see the kernels' docstring for why).
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

__all__ = ["gan_loss", "unavailable_reason"]

MODES = ("lsgan", "vanilla")


def _target(target_is_real: bool) -> float:
    return 1.0 if target_is_real else 0.0


@torch.library.custom_op("pyi2i::gan_loss_fwd", mutates_args=())
def _fwd(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    pred = dense(pred)
    numel = pred.numel()
    block, programs, num_warps = flat_plan(numel)
    partials = torch.empty(programs, dtype=torch.float32, device=pred.device)
    with device_guard(pred):
        kernels("gan_loss").gan_loss_fwd_kernel[(programs,)](
            pred, partials, numel, TARGET=_target(target_is_real), MODE=mode, BLOCK=block, num_warps=num_warps)
    return mean_of_partials(partials, numel, pred.dtype)


@_fwd.register_fake
def _(pred, target_is_real, mode):
    return pred.new_empty(())


@torch.library.custom_op("pyi2i::gan_loss_bwd", mutates_args=())
def _bwd(grad: torch.Tensor, pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    pred = dense(pred)
    numel = pred.numel()
    dpred = torch.empty_like(pred)
    block, programs, num_warps = flat_plan(numel)
    with device_guard(pred):
        kernels("gan_loss").gan_loss_bwd_kernel[(programs,)](
            grad, pred, dpred, numel, 1.0 / numel,
            TARGET=_target(target_is_real), MODE=mode, BLOCK=block, num_warps=num_warps)
    return dpred


@_bwd.register_fake
def _(grad, pred, target_is_real, mode):
    return torch.empty_like(dense(pred))


def _setup_context(ctx, inputs, output):
    pred, target_is_real, mode = inputs
    ctx.save_for_backward(pred)
    ctx.target_is_real, ctx.mode = target_is_real, mode


def _backward(ctx, grad):
    (pred,) = ctx.saved_tensors
    return _bwd(grad, pred, ctx.target_is_real, ctx.mode), None, None


torch.library.register_autograd("pyi2i::gan_loss_fwd", _backward, setup_context=_setup_context)


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """Mean GAN loss of the logits `pred` (any shape and layout; fp32/fp16/bf16) against the
    constant target 1 (real) or 0 (fake). Returns a scalar in pred's dtype."""
    if mode not in MODES:
        raise ValueError(f"the triton gan_loss supports modes {MODES}, got {mode!r}")
    check_floating("pred", pred, pred.device)
    if pred.numel() == 0:
        raise ValueError("gan_loss needs a non-empty pred")
    return _fwd(pred, bool(target_is_real), mode)
