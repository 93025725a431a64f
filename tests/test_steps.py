"""The update order of each method, as REFERENCE.md specifies it."""

import pytest
import torch

from conftest import training_options
from pyi2i.engine.batches import training_dataset
from pyi2i.engine.methods import build_method


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(before, net):
    return [not torch.equal(a, b) for a, b in zip(before, net.parameters())]


def record_updates(method, monkeypatch):
    """Per update: (optimizer name, which nets changed, which nets had gradients when it stepped)."""
    events, original = [], method.update

    def update(name, loss):
        before = {k: snapshot(n) for k, n in method.nets.items()}
        original(name, loss)
        events.append((name,
                       {k for k, n in method.nets.items() if any(changed(before[k], n))},
                       {k for k, n in method.nets.items() if any(p.grad is not None for p in n.parameters())}))
        for net in method.nets.values():
            net.zero_grad(set_to_none=True)

    monkeypatch.setattr(method, "update", update)
    return events


def batch(dataroot, arch):
    opt = training_options(dataroot, arch)
    return opt, next(iter(torch.utils.data.DataLoader(training_dataset(opt), batch_size=1)))


@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla", "wgangp"])
def test_cyclegan_updates_generators_then_discriminators(demo_root, monkeypatch, gan_mode):
    opt, data = batch(demo_root / "unpaired", "cyclegan")
    opt = opt.replace(gan_mode=gan_mode)
    method = build_method(opt, torch.device("cpu"))
    events = record_updates(method, monkeypatch)
    losses = method.step(data)
    assert [e[0] for e in events] == ["G", "D"]
    assert events[0][1] == {"G_A", "G_B"} and events[0][2] == {"G_A", "G_B"}  # D frozen in the G step
    assert events[1][1] == {"D_A", "D_B"} and events[1][2] == {"D_A", "D_B"}  # fakes detached in the D step
    assert set(losses) == set(method.loss_names) and all(torch.isfinite(v) for v in losses.values())


def test_cyclegan_loss_terms_by_hand(demo_root):
    opt, data = batch(demo_root / "unpaired", "cyclegan")
    opt = opt.replace(lr=0.0)  # the step must not change what we compare with
    method = build_method(opt, torch.device("cpu"))
    losses = method.step(data)
    G_A, G_B, D_A = method.nets["G_A"], method.nets["G_B"], method.nets["D_A"]
    A, B = data["A"], data["B"]
    with torch.no_grad():
        rec_A = G_B(G_A(A))
        assert losses["cycle_A"].item() == pytest.approx((rec_A - A).abs().mean().item() * 10, rel=1e-5)
        assert losses["idt_A"].item() == pytest.approx((G_A(B) - B).abs().mean().item() * 10 * 0.5, rel=1e-5)
        assert losses["G_A"].item() == pytest.approx(((D_A(G_A(A)) - 1) ** 2).mean().item(), rel=1e-5)


def test_identity_loss_off(demo_root):
    opt, data = batch(demo_root / "unpaired", "cyclegan")
    opt = opt.replace(lambda_identity=0)
    losses = build_method(opt, torch.device("cpu")).step(data)
    assert losses["idt_A"].item() == 0 and losses["idt_B"].item() == 0


def test_pix2pix_updates_discriminator_then_generator(demo_root, monkeypatch):
    opt, data = batch(demo_root / "paired", "pix2pix")
    method = build_method(opt, torch.device("cpu"))
    events = record_updates(method, monkeypatch)
    losses = method.step(data)
    assert [e[0] for e in events] == ["D", "G"]
    assert events[0][1] == {"D"} and events[0][2] == {"D"}
    assert events[1][1] == {"G"} and events[1][2] == {"G"}
    assert losses["G_L1"].item() > 0 and set(losses) == set(method.loss_names)


def test_pix2pix_sees_the_updated_discriminator_in_its_generator_step(demo_root):
    opt, data = batch(demo_root / "paired", "pix2pix")
    method = build_method(opt, torch.device("cpu"))
    D = method.nets["D"]
    seen = []
    D.register_forward_pre_hook(lambda m, args: seen.append(snapshot(m)[0]))
    method.step(data)
    # D runs on fake and real before its update, then on the fake pair after it
    assert len(seen) == 3 and torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
