"""The GAN objectives on a discriminator's raw output map (logits), reduced to a scalar.

    lsgan:   mean((pred - target)^2)               target 1 (real) or 0 (fake), never materialised
    vanilla: mean(BCE-with-logits(pred, target))
    wgangp:  -mean(pred) for real, +mean(pred) for fake (its gradient penalty is in the engine)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops._dispatch import select

GAN_MODES = ("lsgan", "vanilla", "wgangp")


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
