"""pyi2i's engine against the original release's training loop, bit for bit on the CPU."""

import pytest
import torch

import pyi2i.testing.original as orig
from conftest import training_options
from pyi2i.data import create_dataset, create_loader
from pyi2i.engine.trainer import METHODS
from pyi2i.models.original_format import to_original

STEPS = 4


def oracle_copy(net, oracle):
    oracle.load_state_dict(to_original(net), strict=True)
    return oracle


def assert_bitwise_equal(ours, oracle, name):
    theirs = oracle.state_dict()
    for key, value in to_original(ours).items():
        assert torch.equal(value, theirs[key]), f"{name}: {key} differs"


@pytest.mark.parametrize("arch", ["cyclegan", "pix2pix"])
def test_engine_matches_the_original_loop_bit_for_bit(demo_root, arch):
    if arch == "cyclegan":
        opt = training_options(demo_root / "unpaired", arch, impl="ref", pool_size=50)
    else:
        opt = training_options(demo_root / "paired", arch, impl="ref", netG="unet_128")
    method = METHODS[arch](opt, torch.device("cpu"))
    n = method.nets
    if arch == "cyclegan":
        def G(): return orig.ResnetGenerator(3, 3, opt.ngf, "instance", False, 6)
        def D(): return orig.NLayerDiscriminator(3, opt.ndf, 3, "instance")
        oracles = {"G_A": G(), "G_B": G(), "D_A": D(), "D_B": D()}
    else:
        oracles = {"G": orig.UnetGenerator(3, 3, 7, opt.ngf, "batch", True),
                   "D": orig.NLayerDiscriminator(6, opt.ndf, 3, "batch")}
    for name in oracles:
        oracle_copy(n[name], oracles[name])
    loop = orig.CycleGANLoop(**oracles) if arch == "cyclegan" else orig.Pix2PixLoop(**oracles)

    batches = list(create_loader(create_dataset(opt), batch_size=1, shuffle=True, num_workers=0, seed=0, epoch=1))
    rng = torch.get_rng_state()
    ours = [method.step(b) for b in batches[:STEPS]]
    torch.set_rng_state(rng)  # dropout draws the same masks in both
    theirs = [loop.optimize(b["A"], b["B"]) for b in batches[:STEPS]]
    for name, oracle in oracles.items():
        assert_bitwise_equal(n[name], oracle, name)
    assert [{k: float(v) for k, v in step.items()} for step in ours] == theirs
