"""--amp on the CPU: the GPU's mixed-precision step (autocast, low-precision network outputs against
fp32 targets, every backend's ops) runs here through the same code."""

import logging

import pytest
import torch

from conftest import training_options
from pyi2i.data import create_loader
from pyi2i.engine.batches import training_dataset
from pyi2i.engine.methods import build_method
from pyi2i.engine.trainer import Trainer

STEPS = 2
# bf16 keeps 8 bits of mantissa: one rounding is 0.4% relative, a loss after a few networks and
# two steps stays within a few percent of the fp32 run from the same weights and data. On CPUs with
# native bf16 (AVX-512 BF16) the reference convolutions round every output in bf16 and the
# discriminator's judgement of a fake drifts most: up to 6% by the second step.
RTOL, ATOL = 0.08, 0.01

BACKENDS = ["ref", "triton", "cuda"]


def tiny_options(demo_root, arch, impl, amp):
    data = demo_root / ("unpaired" if arch == "cyclegan" else "paired")
    # no dropout: the fp32 and bf16 runs then see the same networks, whatever dtype the masks are drawn in
    return training_options(data, arch, impl=impl, amp=amp, netG="resnet_6blocks", load_size=36, crop_size=32,
                            ngf=8, ndf=8, no_dropout=True, pool_size=2)


def train_steps(opt, arch):
    """(method, its parameters before, each step's losses) for STEPS steps from seed 0."""
    torch.manual_seed(0)
    method = build_method(opt, torch.device("cpu"))
    before = {f"{name}.{key}": p.detach().clone() for name, net in method.nets.items()
              for key, p in net.named_parameters()}
    loader = create_loader(training_dataset(opt), batch_size=1, shuffle=True, num_workers=0, seed=0, epoch=1)
    losses = [{k: float(v) for k, v in method.step(b).items()} for _, b in zip(range(STEPS), loader)]
    return method, before, losses


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("arch", ["cyclegan", "pix2pix"])
def test_bf16_autocast_trains_on_the_cpu(demo_root, arch, impl, monkeypatch):
    if impl == "triton" and not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")  # Triton's CPU interpreter, for this test only
    method, before, losses = train_steps(tiny_options(demo_root, arch, impl, "bf16"), arch)
    _, _, reference = train_steps(tiny_options(demo_root, arch, impl, None), arch)
    assert method.visuals["fake_B"].dtype == torch.bfloat16  # the generator ran under autocast
    for step, (got, want) in enumerate(zip(losses, reference), start=1):
        for name, value in want.items():
            assert abs(got[name] - value) <= RTOL * abs(value) + ATOL, f"step {step} loss {name}: {got[name]} vs {value}"
    params = {f"{name}.{key}": p for name, net in method.nets.items() for key, p in net.named_parameters()}
    unchanged = [name for name, p in params.items() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters not updated under --amp bf16: {unchanged}"


def test_fp16_autocast_trains_on_the_cpu_with_gradient_scaling(demo_root):
    method, before, losses = train_steps(tiny_options(demo_root, "cyclegan", "ref", "fp16"), "cyclegan")
    assert method.scaler is not None and method.scaler.get_scale() > 0
    assert method.visuals["fake_B"].dtype == torch.float16
    assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses)
    changed = [not torch.equal(p, before[f"{name}.{key}"]) for name, net in method.nets.items()
               for key, p in net.named_parameters()]
    # The scaler starts at 2^16 and skips the steps whose scaled gradients overflow, halving its
    # scale each time: after two steps it has either updated every parameter or backed off.
    assert all(changed) or (not any(changed) and method.scaler.get_scale() < 2.0**16)


def test_the_run_says_it_trains_in_mixed_precision(demo_root, tmp_path, caplog):
    opt = training_options(demo_root / "unpaired", device="cpu", amp="bf16", checkpoints_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        Trainer(opt)
    assert "mixed precision: bf16 autocast on cpu" in caplog.messages
