"""Mean absolute error between two tensors: the cycle, identity and pix2pix L1 terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops._dispatch import select


def _l1_loss_ref(x: torch.Tensor, y: torch.Tensor, upcast: bool = False) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` reduces in fp32."""
    if upcast:
        x, y = x.float(), y.float()
    return F.l1_loss(x, y)


def l1_loss(x: torch.Tensor, y: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """mean(|x - y|) over all elements; x and y of one shape (any layout). Returns a scalar."""
    if x.shape != y.shape:
        raise ValueError(f"l1_loss needs tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    fn = select("l1_loss", impl, x, _l1_loss_ref)
    return fn(x, y)
