"""The GAN objectives on a discriminator's raw output map (logits), reduced to a scalar.

    lsgan:   mean((pred - target)^2)               target 1 (real) or 0 (fake), never materialised
    vanilla: mean(BCE-with-logits(pred, target))
    wgangp:  -mean(pred) for real, +mean(pred) for fake (its gradient penalty is in the engine)

The fused backends of lsgan and vanilla ('triton' in pyi2i/ops/gan_loss_triton.py, 'cuda' in
csrc/loss_reduce/) share the glue below: the operators `gan_loss_fwd(pred, target_is_real, mode)
-> loss` (fp32) and `gan_loss_bwd(grad, pred, target_is_real, mode) -> dpred` (like pred), their
fake kernels and autograd formula (see _library).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops import _library
from pyi2i.ops._dispatch import select
from pyi2i.ops._layout import check_floating, dense

GAN_MODES = ("lsgan", "vanilla", "wgangp")
FUSED_MODES = ("lsgan", "vanilla")
FWD_SCHEMA = "(Tensor pred, bool target_is_real, str mode) -> Tensor"
BWD_SCHEMA = "(Tensor grad, Tensor pred, bool target_is_real, str mode) -> Tensor"


def _gan_loss_ref(pred: torch.Tensor, target_is_real: bool, mode: str, upcast: bool = False) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` reduces in fp32."""
    if upcast:
        pred = pred.float()
    if mode == "wgangp":
        return -pred.mean() if target_is_real else pred.mean()
    target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str, *, impl: str = "auto") -> torch.Tensor:
    """Scalar GAN loss of D's output map `pred` (any shape, any layout) against a constant target."""
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {mode!r}")
    if mode == "wgangp":  # a plain mean: nothing to fuse
        return _gan_loss_ref(pred, target_is_real, mode)
    fn = select("gan_loss", impl, pred, _gan_loss_ref)
    return fn(pred, target_is_real, mode)


def fused(pred: torch.Tensor, target_is_real: bool, mode: str, backend: str) -> torch.Tensor:
    """gan_loss through `backend`'s operators, read in pred's own dense layout and dtype. The loss
    is in pred's dtype, or fp32 under autocast, as the reference gives; the gradient in pred's."""
    if mode not in FUSED_MODES:
        raise ValueError(f"the fused gan_loss supports modes {FUSED_MODES}, got {mode!r}")
    check_floating("pred", pred, pred.device)
    if pred.numel() == 0:
        raise ValueError("gan_loss needs a non-empty pred")
    loss = _library.backend_ops(backend).gan_loss_fwd(dense(pred), bool(target_is_real), mode)
    return loss.to(_library.loss_dtype(pred.device.type, pred.dtype))


def _fake_fwd(pred, target_is_real, mode):
    return pred.new_empty((), dtype=torch.float32)


def _fake_bwd(grad, pred, target_is_real, mode):
    return torch.empty_like(pred)


def _setup_context(ctx, inputs, output):
    pred, target_is_real, mode = inputs
    ctx.save_for_backward(pred)
    ctx.target_is_real, ctx.mode = target_is_real, mode


def _backward(ctx, grad):
    (pred,) = ctx.saved_tensors
    return ctx.ops.gan_loss_bwd(grad, pred, ctx.target_is_real, ctx.mode), None, None


_library.register("gan_loss", fake_fwd=_fake_fwd, fake_bwd=_fake_bwd, setup_context=_setup_context,
                  backward=_backward, triton_schemas=(FWD_SCHEMA, BWD_SCHEMA))
