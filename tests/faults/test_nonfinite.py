"""Fault: losses or weights become NaN or infinite. Outcome: the run stops at once with exit 1 and a
message naming the step, the value and the last good checkpoint; nothing non-finite is saved."""

import pytest
import torch

from faultkit import error_lines, run_command, tiny_command, tiny_options
from pyi2i import checkpoints, integrity
from pyi2i.engine import distributed
from pyi2i.engine.cyclegan import CycleGAN
from pyi2i.engine.guard import NonFiniteGuard, NonFiniteLoss
from pyi2i.engine.trainer import train


def test_guard_names_the_first_bad_step_and_loss():
    weight = torch.ones(3)
    guard = NonFiniteGuard(["G", "D"], [weight], torch.device("cpu"), step=10)
    for _ in range(2):
        guard.check({"G": torch.tensor(1.0), "D": torch.tensor(2.0)})
    guard.raise_if_bad(distributed.World(), "x.pt")  # all finite: nothing happens
    guard.check({"G": torch.tensor(1.0), "D": torch.tensor(float("inf"))})  # step 13
    guard.check({"G": torch.tensor(float("nan")), "D": torch.tensor(1.0)})  # a later one is not the first
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss D \(inf\) at step 13: .* last good checkpoint is x\.pt"):
        guard.raise_if_bad(distributed.World(), "x.pt")


def test_guard_sees_non_finite_weights_with_finite_losses():
    weight = torch.ones(3)
    guard = NonFiniteGuard(["G"], [weight], torch.device("cpu"))
    guard.check({"G": torch.tensor(1.0)})
    weight[1] = float("nan")
    guard.check({"G": torch.tensor(1.0)})
    with pytest.raises(NonFiniteLoss, match=r"non-finite weights \(norm nan\) at step 2"):
        guard.raise_if_bad(distributed.World(), "none")


def test_lr_inf_stops_before_the_first_save_and_writes_no_weights(demo_root, tmp_path):
    r = run_command(tiny_command(demo_root / "unpaired", tmp_path, lr="inf", save_latest_freq=1))
    assert r.returncode == 1, r.stderr
    [line] = error_lines(r.stderr)
    assert "non-finite weights (norm nan) at step 1" in line and "last good checkpoint is none" in line
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob("*.pth"))


def test_divergence_never_replaces_the_last_good_checkpoint(demo_root, tmp_path, monkeypatch):
    train(tiny_options(demo_root / "unpaired", tmp_path, max_steps=2))
    run = tmp_path / "run"
    before = checkpoints.load(run / "latest.pt")["method"]["nets"]
    step = CycleGAN.step

    def diverging(self, batch):
        losses = step(self, batch)
        with torch.no_grad():
            self.nets["G_A"].head.weight.fill_(float("nan"))  # the weights go bad at step 3
        return losses

    monkeypatch.setattr(CycleGAN, "step", diverging)
    with pytest.raises(NonFiniteLoss, match=rf"weights \(norm nan\) at step 3: .*{run / 'latest.pt'} \(step 2\)"):
        train(tiny_options(demo_root / "unpaired", tmp_path, max_steps=6, save_latest_freq=1, continue_train=True))
    # The resumed session saved again at the end of epoch 1 (step 2), before the weights went bad.
    state = checkpoints.load(run / "latest.pt")
    assert integrity.verify(run / "latest.pt") and state["step"] == 2
    for name, net in state["method"]["nets"].items():
        assert all(torch.equal(t, before[name][k]) for k, t in net.items()), name
    for path in run.glob("*.pth"):
        assert integrity.verify(path) and all(torch.isfinite(t).all() for t in checkpoints.load(path).values())
