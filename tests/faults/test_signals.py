"""Faults: SIGTERM (timeout, Slurm, Kubernetes) or Ctrl-C sent to the whole process group, with
loader worker processes running. Outcome: the workers live on, the run saves a latest.pt that
verifies and resumes, and exits 128 + the signal; SIGTERM sent again does not abort the save. The
same under torchrun, whose agent forwards the signal to its processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultkit import TINY, tiny_command, training_argv
from pyi2i import checkpoints, integrity, reports


@pytest.mark.parametrize("signum, times", [(signal.SIGTERM, 3), (signal.SIGINT, 1)])
def test_signal_to_the_process_group_saves_and_exits(demo_root, tmp_path, signum, times):
    cmd = tiny_command(demo_root / "unpaired", tmp_path, num_threads=2, max_dataset_size="inf", n_epochs=50)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "run" / "loss_log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and (not log.exists() or len(reports.read_csv(log)) < 3):
        time.sleep(0.2)
    for _ in range(times):
        os.killpg(proc.pid, signum)  # the run and its loader workers, as a scheduler does
        time.sleep(0.3)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signum, err
    assert err.count(f"{signal.Signals(signum).name} received: saving a checkpoint") == 1
    assert "Traceback" not in err and "error" not in err.lower()
    latest = tmp_path / "run" / "latest.pt"
    state = checkpoints.load(latest)
    assert integrity.verify(latest) and state["step"] >= 3
    assert state["step"] == int(reports.read_csv(log)[-1]["step"])  # it finished the step it was in, then saved


def test_sigterm_to_the_group_under_torchrun_saves(demo_root, tmp_path):
    tests = Path(__file__).parent.parent
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(tests / "launch_train.py"),
           *training_argv(demo_root / "unpaired", checkpoints_dir=tmp_path, num_threads=1, n_epochs=50,
                          **{**TINY, "max_dataset_size": "inf"})]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    log = tmp_path / "run" / "loss_log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and (not log.exists() or len(reports.read_csv(log)) < 2):
        time.sleep(0.2)
    for _ in range(2):
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.3)
    _, err = proc.communicate(timeout=240)
    latest = tmp_path / "run" / "latest.pt"
    state = checkpoints.load(latest)
    assert integrity.verify(latest) and state["step"] == int(reports.read_csv(log)[-1]["step"]), err[-3000:]
    assert len(state["ranks"]) == 1  # rank 1's random stream and pool went into rank 0's file
    # The training processes stopped after the same step and saved (rank 0 logs it). torchrun's own
    # status is its agent's: it raises on the signal and exits 1 once its processes have ended.
    assert f"stopped by SIGTERM at step {state['step']}; resume with --continue_train" in err, err[-3000:]
