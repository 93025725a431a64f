"""The training loop: resuming exactly, checkpoints, reports, and stopping safely."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import training_options
from pyi2i import checkpoints
from pyi2i.engine.cyclegan import CycleGAN
from pyi2i.engine.trainer import NonFiniteLoss, Trainer, train
from pyi2i.models import define_G
from pyi2i.models.original_format import IncompatibleCheckpoint


def final_state(run_dir):
    return checkpoints.load(run_dir / "latest.pt")


def assert_same_training_state(a, b):
    for name, net in a["method"]["nets"].items():
        for key, tensor in net.items():
            assert torch.equal(tensor, b["method"]["nets"][name][key]), f"{name}.{key}"
    for name, opt_state in a["method"]["optimizers"].items():
        for index, param_state in opt_state["state"].items():
            other = b["method"]["optimizers"][name]["state"][index]
            assert all(torch.equal(param_state[k], other[k]) for k in ("exp_avg", "exp_avg_sq")), f"{name}[{index}]"
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] and a["epoch_iter"] == b["epoch_iter"]


@pytest.mark.parametrize("arch, total, first", [("cyclegan", 11, 5), ("pix2pix", 10, 8)])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(demo_root, tmp_path, arch, total, first):
    data = demo_root / ("unpaired" if arch == "cyclegan" else "paired")
    kw = dict(checkpoints_dir=tmp_path, pool_size=3, n_epochs=1, n_epochs_decay=2)  # 8 samples per epoch
    train(training_options(data, arch, name="whole", max_steps=total, **kw))
    train(training_options(data, arch, name="split", max_steps=first, **kw))
    train(training_options(data, arch, name="split", max_steps=total, continue_train=True, **kw))
    assert_same_training_state(final_state(tmp_path / "whole"), final_state(tmp_path / "split"))


def test_outputs_of_a_run(demo_root, tmp_path):
    opt = training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, save_epoch_freq=1)
    trainer = train(opt)
    run = tmp_path / "run"
    assert (run / "latest.pt").is_file() and (run / "epoch_001.pt").is_file() and (run / "epoch_002.pt").is_file()
    for name in ("G_A", "G_B", "D_A", "D_B"):
        assert (run / f"latest_net_{name}.pth").is_file() and (run / f"2_net_{name}.pth").is_file()
    G = define_G(opt.model.netG, 3, 3, opt.model.ngf, opt.model.norm, init=False)
    checkpoints.load_original(G, run / "latest_net_G_A.pth")
    assert torch.equal(G.head.weight, trainer.method.nets["G_A"].head.weight)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    log = (run / "loss_log.csv").read_text().splitlines()
    assert log[0].startswith("step,epoch,epoch_iter,time,images_per_s,lr,D_A,G_A") and len(log) > 4
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3  # header + one held-out L1 per epoch (the demo data has hidden targets)
    assert not list(run.glob(".*.tmp"))  # no temporary files left behind


def test_existing_run_is_not_overwritten(demo_root, tmp_path):
    kw = dict(checkpoints_dir=tmp_path, max_steps=1)
    train(training_options(demo_root / "unpaired", **kw))
    before = (tmp_path / "run" / "latest.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--continue_train"):
        Trainer(training_options(demo_root / "unpaired", **kw))
    with pytest.raises(IncompatibleCheckpoint, match="--ngf"):
        Trainer(training_options(demo_root / "unpaired", ngf=8, continue_train=True, **kw))
    assert (tmp_path / "run" / "latest.pt").read_bytes() == before
    with pytest.raises(FileNotFoundError):
        Trainer(training_options(demo_root / "unpaired", name="other", continue_train=True, **kw))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(demo_root, tmp_path, monkeypatch):
    calls = {"n": 0}
    l1 = CycleGAN.l1_loss

    def poisoned(self, x, y):
        calls["n"] += 1
        return l1(self, x, y) * (float("nan") if calls["n"] > 12 else 1.0)  # 4 L1 terms a step: NaN from step 4

    monkeypatch.setattr(CycleGAN, "l1_loss", poisoned)
    opt = training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, save_latest_freq=2, print_freq=5)
    with pytest.raises(NonFiniteLoss, match="cycle_A.*NaN or infinite.*last good checkpoint"):
        train(opt)
    state = final_state(tmp_path / "run")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for net in state["method"]["nets"].values() for t in net.values()
               if t.is_floating_point())


def test_sigterm_saves_then_exits_and_the_run_resumes(demo_root, tmp_path):
    cmd = [sys.executable, "-m", "pyi2i.train", "--dataroot", str(demo_root / "unpaired"), "--checkpoints_dir",
           str(tmp_path), "--name", "run", "--ngf", "4", "--ndf", "4", "--netG", "resnet_6blocks", "--load_size", "36",
           "--crop_size", "32", "--num_threads", "0", "--print_freq", "1", "--no_progress", "--n_epochs", "50"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "loss_log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received" in err
    state = final_state(tmp_path / "run")
    assert state["step"] >= 2
    resumed = subprocess.run(cmd + ["--continue_train", "--max_steps", str(state["step"] + 1)], capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert final_state(tmp_path / "run")["step"] == state["step"] + 1
