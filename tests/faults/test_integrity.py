"""Faults: a checkpoint or weights file corrupted on disk, one with no record, a crash or kill -9
during a save. Outcome: a clear error naming the file (never a silent load), a resume from the
previous good checkpoint, and a file/record pair that always verifies."""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from faultkit import tiny_options
from pyi2i import checkpoints, fileio, integrity
from pyi2i.engine.trainer import train
from pyi2i.models import define_G


def zero_middle(path, size=4096):
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - size // 2
    data[start:start + size] = bytes(size)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def finished_run(demo_root, tmp_path_factory):
    """A run of 2 epochs of 2 steps, with epoch_001.pt and epoch_002.pt and their weight files."""
    root = tmp_path_factory.mktemp("integrity")
    train(tiny_options(demo_root / "unpaired", root, n_epochs=1, n_epochs_decay=1, save_epoch_freq=1))
    return root / "run"


def copy_run(run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (out / p.name).write_bytes(p.read_bytes())
    return out


def test_every_saved_file_has_a_record_that_verifies(finished_run):
    saved = sorted(finished_run.glob("*.pt")) + sorted(finished_run.glob("*.pth"))
    assert len(saved) == 3 + 3 * 4  # latest, epoch 1 and 2; the four networks as latest_, 1_ and 2_
    for path in saved:
        assert integrity.verify(path), path
        assert integrity.recorded(path) == [integrity.digest_file(path)]


def test_zeroed_block_in_weights_is_an_error_naming_the_file(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    zero_middle(run / "latest_net_G_A.pth")
    G = define_G("resnet_6blocks", 3, 3, 4, "instance", init=False)
    with pytest.raises(integrity.CorruptFile, match=r"latest_net_G_A\.pth does not match its checksum record"):
        checkpoints.load_original(G, run / "latest_net_G_A.pth")


def test_a_file_without_record_loads_with_a_notice(finished_run, tmp_path, caplog):
    run = copy_run(finished_run, tmp_path)
    integrity.record_path(run / "latest_net_G_A.pth").unlink()  # as the original release saves it
    G = define_G("resnet_6blocks", 3, 3, 4, "instance", init=False)
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        checkpoints.load_original(G, run / "latest_net_G_A.pth")
    assert "latest_net_G_A.pth has no checksum record" in caplog.text


def test_continue_train_falls_back_to_the_previous_good_checkpoint(demo_root, finished_run, tmp_path, caplog):
    run = copy_run(finished_run, tmp_path)
    zero_middle(run / "latest.pt")
    zero_middle(run / "epoch_002.pt")
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        trainer = train(tiny_options(demo_root / "unpaired", tmp_path, n_epochs=1, n_epochs_decay=1, save_epoch_freq=1,
                                     continue_train=True, max_steps=3))
    assert f"cannot resume from {run / 'latest.pt'}: {run / 'latest.pt'} does not match" in caplog.text
    assert f"falling back to the previous good checkpoint {run / 'epoch_001.pt'} (epoch 2, step 2)" in caplog.text
    assert trainer.step == 3 and checkpoints.load(run / "latest.pt")["step"] == 3  # replaced by a good one


@pytest.mark.parametrize("crash_in", ["file", "final record"])
def test_a_crash_between_the_steps_of_a_save_leaves_a_pair_that_verifies(tmp_path, monkeypatch, crash_in):
    path = tmp_path / "latest.pt"
    integrity.save_bytes(path, b"old contents")
    write_text, write_bytes = fileio.write_text, fileio.write_bytes
    calls = []

    def crash(real):
        def write(*args):
            calls.append(1)
            if crash_in == "file" or len(calls) == 2:  # the record is written twice, the file once
                raise KeyboardInterrupt
            real(*args)
        return write

    if crash_in == "file":
        monkeypatch.setattr(fileio, "write_bytes", crash(write_bytes))
    else:
        monkeypatch.setattr(fileio, "write_text", crash(write_text))
    with pytest.raises(KeyboardInterrupt):
        integrity.save_bytes(path, b"new contents")
    assert path.read_bytes() == (b"old contents" if crash_in == "file" else b"new contents")
    assert integrity.verify(path)
    assert not list(tmp_path.glob(f"*{fileio.TMP_SUFFIX}"))


SAVER = """
import os, sys
from pyi2i import integrity
path = sys.argv[1]
i = 0
while True:
    i += 1
    integrity.save_bytes(path, str(i).encode() * 200000 + os.urandom(64))
"""


def test_kill_9_during_saves_never_leaves_a_file_that_fails_to_verify(tmp_path):
    path = tmp_path / "latest.pt"
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)])
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.05 + 0.07 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity.verify(path), f"trial {trial}"
        fileio.remove_orphans(tmp_path)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(fileio.TMP_SUFFIX)]
