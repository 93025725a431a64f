import pytest
import torch

from pyi2i.config import OptimConfig
from pyi2i.engine.schedule import make_scheduler, step_scheduler


def rates(policy, epochs, **kw):
    opt = OptimConfig(lr_policy=policy, epoch_count=1, n_epochs=3, n_epochs_decay=3, lr_decay_iters=2, **kw)
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_scheduler(optimizer, opt)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        step_scheduler(scheduler, metric=1.0)
    return out


def test_linear_holds_then_decays_to_zero():
    # epochs 1-3 at the base rate, then 1 - k/(n_epochs_decay + 1)
    assert rates("linear", 6) == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25])


def test_step_and_cosine():
    assert rates("step", 5) == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    cos = rates("cosine", 4)
    assert cos[0] == 1 and cos[3] == pytest.approx(0, abs=1e-12) and cos[1] > cos[2]


def test_plateau_lowers_the_rate_when_the_loss_stops_falling():
    assert rates("plateau", 8)[-1] == pytest.approx(0.2)
