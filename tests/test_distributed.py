"""Data-parallel training: torchrun with 2 CPU processes (gloo) against one process, resuming under
torchrun, and the pieces (sharding, the process world, option checks, synchronised batch norm)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import training_argv, training_options
from pyi2i import checkpoints, reports
from pyi2i.data import epoch_order
from pyi2i.engine import distributed
from pyi2i.engine.trainer import train
from pyi2i.models import define_G
from pyi2i.models.original_format import to_original

TESTS = Path(__file__).parent
TWO_RANKS = dict(print_freq=1, eval_freq=0, no_tensorboard=True)


def torchrun(dataroot, checkpoints_dir, saves_log=None, **options):
    """A 2-process run through torchrun, as a user starts one (with oneDNN off: see launch_train.py)."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
            str(TESTS / "launch_train.py"), *training_argv(dataroot, checkpoints_dir=checkpoints_dir, **options)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    if saves_log:
        env["SAVES_LOG"] = str(saves_log)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def test_two_processes_at_batch_1_take_the_steps_of_one_process_at_batch_2(demo_root, tmp_path, monkeypatch):
    data = demo_root / "unpaired"
    # The image pool is per-process state: without it, the two runs see the same fakes.
    kw = dict(pool_size=0, **TWO_RANKS)
    torchrun(data, tmp_path, name="two", batch_size=1, max_steps=2, **kw)
    saves = tmp_path / "saves.txt"
    resumed = torchrun(data, tmp_path, saves_log=saves, name="two", batch_size=1, max_steps=4, continue_train=True,
                       **kw)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # as in launch_train.py
    train(training_options(data, checkpoints_dir=tmp_path, name="one", batch_size=2, max_steps=4, **kw))

    one, two = (checkpoints.load(tmp_path / name / "latest.pt") for name in ("one", "two"))
    assert one["step"] == two["step"] == 4 and list(two["ranks"]) == [1]
    # Weights are not compared: where a CPU's kernels block a batch of two differently from two
    # batches of one (AVX-512 does), gradients that are rounding noise (biases before an instance
    # norm) differ, and Adam scales noise to full steps. The losses of every step, which a rank's
    # missing or unaveraged gradient would change at once, are compared instead.
    # rank 0 logged the mean of both ranks' losses: those of the batch of two
    rows = [reports.read_csv(tmp_path / name / "loss_log.csv") for name in ("one", "two")]
    assert [r["step"] for r in rows[1]] == [r["step"] for r in rows[0]] == ["1", "2", "3", "4"]
    for a, b in zip(*rows):
        for loss in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"):
            assert float(b[loss]) == pytest.approx(float(a[loss]), rel=1e-5), (a["step"], loss)
    # rank 0 alone speaks and writes, each file once
    assert resumed.stderr.count("training cyclegan on") == 1
    written = [line.split() for line in saves.read_text().splitlines()]
    assert {rank for rank, _ in written} == {"0"}
    paths = [path for _, path in written]
    assert len(paths) == len(set(paths)) and sum(p.endswith("latest.pt") for p in paths) == 1


def test_dali_loader_shards_the_epoch_under_torchrun(demo_root, tmp_path, monkeypatch):
    pytest.importorskip("nvidia.dali", reason="the DALI loader needs DALI")
    data = demo_root / "unpaired"
    kw = dict(pool_size=0, loader="dali", **TWO_RANKS)
    torchrun(data, tmp_path, name="two", batch_size=1, max_steps=2, **kw)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # as in launch_train.py
    train(training_options(data, checkpoints_dir=tmp_path, name="one", batch_size=2, max_steps=2, **kw))
    # Each rank's DALI pipeline loaded its half of every batch of two: the mean losses are the same.
    rows = [reports.read_csv(tmp_path / name / "loss_log.csv") for name in ("one", "two")]
    assert [r["step"] for r in rows[1]] == [r["step"] for r in rows[0]] == ["1", "2"]
    for a, b in zip(*rows):
        for loss in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"):
            assert float(b[loss]) == pytest.approx(float(a[loss]), rel=1e-5), (a["step"], loss)


def test_resuming_under_torchrun_continues_every_rank_exactly(demo_root, tmp_path):
    data = demo_root / "unpaired"
    # Each rank has its own image pool and random stream: both must come back on resume.
    kw = dict(pool_size=3, batch_size=1, **TWO_RANKS)
    torchrun(data, tmp_path, name="whole", max_steps=5, **kw)
    torchrun(data, tmp_path, name="split", max_steps=2, **kw)
    torchrun(data, tmp_path, name="split", max_steps=5, continue_train=True, **kw)
    whole, split = (checkpoints.load(tmp_path / name / "latest.pt") for name in ("whole", "split"))
    for name, net in whole["method"]["nets"].items():
        for key, tensor in net.items():
            assert torch.equal(tensor, split["method"]["nets"][name][key]), f"{name}.{key}"
    for pool, state in whole["ranks"][1]["pools"].items():
        assert torch.equal(state["images"], split["ranks"][1]["pools"][pool]["images"]), pool
    assert not torch.equal(whole["ranks"][1]["pools"]["fake_B"]["images"],
                           whole["method"]["pools"]["fake_B"]["images"])  # the ranks' pools differ


@pytest.mark.parametrize("n, shuffle", [(8, False), (8, True), (12, True)])
def test_two_rank_shards_together_are_the_single_process_batches_of_two(n, shuffle):
    order = epoch_order(n, seed=3, epoch=2, shuffle=shuffle)
    shards = [epoch_order(n, seed=3, epoch=2, shuffle=shuffle, rank=r, world_size=2) for r in range(2)]
    batches = [order[2 * k: 2 * k + 2] for k in range(n // 2)]
    assert batches == [[a, b] for a, b in zip(*shards)]


def test_a_single_process_world_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world, device = distributed.setup(torch.device("cpu"))
    assert world == distributed.World() and device == torch.device("cpu") and not distributed.launched()
    assert world.is_main and not world.distributed
    assert world.any(True) and not world.any(False)
    assert world.gather("state") == ["state"]
    t = torch.tensor([1.0, 3.0])
    assert world.mean(t) is t and t.tolist() == [1.0, 3.0]
    with world.main_first():
        world.barrier()


def test_combinations_that_cannot_work_are_refused_with_the_reason():
    two = distributed.World(rank=0, world_size=2)
    graphs = dict(cuda_graphs=True, norm="instance")
    assert "--cuda-graphs" in distributed.unsupported(two, torch.device("cuda", 0), **graphs)
    assert distributed.unsupported(distributed.World(), torch.device("cuda", 0), **graphs) is None
    sync = dict(cuda_graphs=False, norm="syncbatch")
    assert "--norm syncbatch needs CUDA" in distributed.unsupported(two, torch.device("cpu"), **sync)
    assert distributed.unsupported(two, torch.device("cuda", 0), **sync) is None


def test_syncbatch_keeps_the_original_checkpoint_layout():
    torch.manual_seed(0)
    batch = define_G("unet_128", 3, 3, 8, "batch")
    torch.manual_seed(0)
    sync = define_G("unet_128", 3, 3, 8, "syncbatch")
    params = list(sync.parameters())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(sync)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    assert list(converted.parameters()) == params  # the same tensors: an optimizer built before stays valid
    expected = to_original(batch)
    got = to_original(converted)
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
