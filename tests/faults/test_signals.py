"""Faults: SIGTERM (timeout, Slurm, Kubernetes) or Ctrl-C sent to the whole process group, with
loader worker processes running. Outcome: the workers live on, the run saves a latest.pt that
verifies and resumes, and exits 128 + the signal; SIGTERM sent again does not abort the save."""

import os
import signal
import subprocess
import time

import pytest

from faultkit import tiny_command
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
