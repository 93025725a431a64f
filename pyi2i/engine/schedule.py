"""Learning-rate policies of the original release, stepped once at the end of every epoch."""

from __future__ import annotations

import warnings

from torch.optim import Optimizer, lr_scheduler

from pyi2i.config import OptimConfig


def make_scheduler(optimizer: Optimizer, optim: OptimConfig):
    """linear: n_epochs at the base rate, then linear decay to zero over n_epochs_decay;
    step: x0.1 every lr_decay_iters epochs; plateau: x0.2 when the G loss stops falling;
    cosine: cosine annealing to zero over n_epochs."""
    if optim.lr_policy == "linear":
        def factor(epoch: int) -> float:
            return 1.0 - max(0, epoch + optim.epoch_count - optim.n_epochs) / float(optim.n_epochs_decay + 1)
        return lr_scheduler.LambdaLR(optimizer, factor)
    if optim.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=optim.lr_decay_iters, gamma=0.1)
    if optim.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if optim.lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(optim.n_epochs, 1), eta_min=0)
    raise ValueError(f"lr_policy must be linear, step, plateau or cosine, got {optim.lr_policy!r}")


def step_scheduler(scheduler, metric: float) -> None:
    """End-of-epoch step; the plateau policy watches `metric` (the epoch's mean generator loss)."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
        return
    # A run resumed at an epoch boundary steps its schedule before its first optimizer step, which is
    # right here (the schedule is per epoch) but makes PyTorch warn.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()
