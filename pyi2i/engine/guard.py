"""Stopping a run whose losses or weights became NaN or infinite, before anything bad is saved.

The check runs after every step on the device and only updates a few flags there (no host sync,
nothing that depends on the data's values), so it costs the step nothing to wait for. The flags
are read on the host where the loop syncs anyway: at each loss report and before every save.
"""

from __future__ import annotations

import math

import torch

from pyi2i.engine import distributed
from pyi2i.errors import UserError


class NonFiniteLoss(UserError, RuntimeError):
    """A loss or a weight became NaN or infinite: training stopped, the last good checkpoint is kept."""


class NonFiniteGuard:
    """Remembers, on the device, the first step at which a loss or a weight was not finite.

    `params` are the trained weights; one fused norm per step covers all of them (a NaN or an
    infinity anywhere makes the norm non-finite)."""

    def __init__(self, loss_names: list[str], params: list[torch.Tensor], device: torch.device, step: int = 0):
        self.loss_names = list(loss_names)
        self.params = [p for p in params if p.is_floating_point()]
        self.step = torch.tensor(step, device=device)  # counted on the device: no host value per step
        self.first_bad_step = torch.tensor(-1, device=device)
        # At the first bad step: each loss's value, then the weights' norm.
        self.first_bad_values = torch.zeros(len(self.loss_names) + 1, device=device)

    def check(self, losses: dict[str, torch.Tensor]) -> None:
        """Call after each step with the losses it returned (and the weights already updated)."""
        self.step.add_(1)
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self.params)).float())
        values = torch.cat([values, norm.reshape(1)])
        first = (self.first_bad_step < 0) & ~torch.isfinite(values).all()
        self.first_bad_step.copy_(torch.where(first, self.step, self.first_bad_step))
        self.first_bad_values.copy_(torch.where(first, values, self.first_bad_values))

    def raise_if_bad(self, world: distributed.World, last_good: str) -> None:
        """Raises NonFiniteLoss, naming the step, the culprit and `last_good`, if any rank saw one (a
        host sync, and a collective under torchrun: every rank calls it at the same step)."""
        any_bad = world.any(bool(self.first_bad_step.item() >= 0))
        if not any_bad:
            return
        step = int(self.first_bad_step.item())
        if step < 0:
            what, where = "a loss or weight", "on another process"
        else:
            values = self.first_bad_values.tolist()
            bad = [f"loss {name} ({value})" for name, value in zip(self.loss_names, values) if not math.isfinite(value)]
            if not math.isfinite(values[-1]):
                bad.append(f"weights (norm {values[-1]})")
            what, where = ", ".join(bad), f"at step {step}"
        raise NonFiniteLoss(
            f"non-finite {what} {where}: a value became NaN or infinite, so training stopped without saving it; "
            f"the last good checkpoint is "
            f"{last_good}. Try a lower --lr, --amp bf16 instead of fp16, or check the data for broken images.")

