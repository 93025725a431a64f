"""pyi2i's engine against the original release's training loop, bit for bit on the CPU."""

import random
import sys

import pytest
import torch

import pyi2i.testing.original as orig
from conftest import training_options
from pyi2i.data import create_loader
from pyi2i.engine.batches import training_dataset
from pyi2i.engine.pool import HostPool
from pyi2i.engine.methods import build_method
from pyi2i.models.original_format import to_original


def oracle_copy(net, oracle):
    oracle.load_state_dict(to_original(net), strict=True)
    return oracle


def assert_bitwise_equal(ours, oracle, name):
    theirs = oracle.state_dict()
    for key, value in to_original(ours).items():
        assert torch.equal(value, theirs[key]), f"{name}: {key} differs"


def method_and_loop(opt, arch):
    """pyi2i's method and the original loop over copies of the same initial networks."""
    method = build_method(opt, torch.device("cpu"))
    if arch == "cyclegan":
        def G(): return orig.ResnetGenerator(3, 3, opt.model.ngf, "instance", False, 6)
        def D(): return orig.NLayerDiscriminator(3, opt.model.ndf, 3, "instance")
        oracles = {"G_A": G(), "G_B": G(), "D_A": D(), "D_B": D()}
    else:
        oracles = {"G": orig.UnetGenerator(3, 3, 7, opt.model.ngf, "batch", True),
                   "D": orig.NLayerDiscriminator(6, opt.model.ndf, 3, "batch")}
    for name in oracles:
        oracle_copy(method.nets[name], oracles[name])
    if arch == "cyclegan":
        loop = orig.CycleGANLoop(**oracles, pool_size=opt.loss.pool_size)
    else:
        loop = orig.Pix2PixLoop(**oracles)
    return method, loop, oracles


def training_batches(opt, n):
    """The first `n` batches of a run, over as many epochs as that takes."""
    batches, epoch = [], 1
    while len(batches) < n:
        batches += create_loader(training_dataset(opt), batch_size=opt.data.batch_size, shuffle=True, num_workers=0,
                                 seed=0, epoch=epoch)
        epoch += 1
    return batches[:n]


def run_both(method, loop, batches):
    """Both loops from the same random state (dropout masks, pool choices); each step's losses."""
    rng, py_rng = torch.get_rng_state(), random.getstate()
    ours = [method.step(b) for b in batches]
    torch.set_rng_state(rng)
    random.setstate(py_rng)
    theirs = [dict(loop.optimize(b["A"], b["B"])) for b in batches]
    return ours, theirs


def assert_same_losses(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert {k: float(v.detach()) for k, v in a.items()} == {k: float(v.detach()) for k, v in b.items()}, f"step {i + 1}"


@pytest.mark.parametrize("arch", ["cyclegan", "pix2pix"])
def test_engine_matches_the_original_loop_bit_for_bit(demo_root, arch):
    if arch == "cyclegan":
        opt = training_options(demo_root / "unpaired", arch, impl="ref", pool_size=50)
    else:
        opt = training_options(demo_root / "paired", arch, impl="ref", netG="unet_128")
    method, loop, oracles = method_and_loop(opt, arch)
    ours, theirs = run_both(method, loop, training_batches(opt, 4))
    for name, oracle in oracles.items():
        assert_bitwise_equal(method.nets[name], oracle, name)
    assert_same_losses(ours, theirs)


def test_cyclegan_matches_the_original_past_the_pool_filling(demo_root):
    """120 steps at batch 1 with a pool of 50: from step 51 on, half of the fakes D sees come from the
    pool, drawn with Python's `random` in both loops; weights, losses and pool contents stay equal."""
    opt = training_options(demo_root / "unpaired", impl="ref", pool_size=50, batch_size=1)
    method, loop, oracles = method_and_loop(opt, "cyclegan")
    assert isinstance(method.fake_A_pool, HostPool)
    ours, theirs = run_both(method, loop, training_batches(opt, 120))
    assert_same_losses(ours, theirs)
    for name, oracle in oracles.items():
        assert_bitwise_equal(method.nets[name], oracle, name)
    for ours_pool, their_pool in ((method.fake_A_pool, loop.fake_A_pool), (method.fake_B_pool, loop.fake_B_pool)):
        assert torch.equal(ours_pool.stored(), torch.cat(their_pool.images))
        # the pool has swapped: some stored images are from before the 50th step and some after
        assert len(their_pool.images) == 50


HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def test_the_original_loop_reads_losses_only_every_print_freq_steps(demo_root, monkeypatch):
    """Counts the host reads of tensors (which sync with a GPU) made by the loop's own code: only
    `current_losses`, on the print_freq steps, may read, one read per loss."""
    opt = training_options(demo_root / "unpaired", impl="ref", pool_size=2, batch_size=1)
    _, loop, _ = method_and_loop(opt, "cyclegan")
    source = orig.__file__
    reads = []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            while caller.f_code.co_name.startswith("<"):  # a comprehension's own frame: its function's
                caller = caller.f_back
            if caller.f_code.co_filename == source:
                reads.append(caller.f_code.co_name)
            return original(self, *args, **kwargs)
        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    readings = orig.train(loop, training_batches(opt, 6), print_freq=3)
    monkeypatch.undo()
    assert len(readings) == 2 and all(len(r) == 8 for r in readings)
    assert reads == ["current_losses"] * (2 * 8)
