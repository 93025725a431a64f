"""Faults around the run folder: a second writer, a --name that escapes, a full disk or a read-only
folder during a save, orphan temporary files, loss-log rows repeated after a resume. Outcome: exit
code 1 (2 for a usage error) with one line naming the problem, and the folder as it was."""

import errno
import logging
import os
import re
import socket
import subprocess
import sys

import pytest

from faultkit import TINY, tiny_options, training_argv
from pyi2i import checkpoints, fileio, integrity, reports
from pyi2i.cli import run_cli
from pyi2i.engine.trainer import train
from pyi2i.options import parse_training
from pyi2i.train import main as train_main


def cli_train(dataroot, checkpoints_dir, caplog, **overrides):
    """(exit code, error lines) of `python -m pyi2i.train` run in this process."""
    argv = training_argv(dataroot, checkpoints_dir=checkpoints_dir, **{**TINY, **overrides})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        code = run_cli(lambda: train_main(argv))
    return code, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


HOLDER = ("from pyi2i.engine.lock import RunLock; import sys, time; RunLock(sys.argv[1]).acquire(); "
          "print('held', flush=True); time.sleep(120)")


def test_a_second_writer_stops_at_once_naming_the_holder_and_the_lock_dies_with_it(demo_root, tmp_path, caplog):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        code, errors = cli_train(demo_root / "unpaired", tmp_path, caplog, max_steps=1)
        assert code == 1
        [error] = errors
        assert re.fullmatch(rf"error: {re.escape(str(run))} is in use by PID {holder.pid} on host "
                            rf"{re.escape(socket.gethostname())} \(since [0-9-]+ [0-9:]+\): wait for that run to "
                            r"end or stop it, or choose another --name \(or --checkpoints_dir\); nothing was written",
                            error)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        holder.kill()  # SIGKILL: no chance to clean up, the kernel drops the lock
        holder.wait()
    (run / f".latest.pt.x1y2z3{fileio.TMP_SUFFIX}").write_bytes(b"half a checkpoint")  # an interrupted save's
    code, errors = cli_train(demo_root / "unpaired", tmp_path, caplog, max_steps=1)
    assert code == 0 and errors == []
    assert f"removed {run / ('.latest.pt.x1y2z3' + fileio.TMP_SUFFIX)}, left by an interrupted save" in caplog.text
    assert not list(run.glob(f"*{fileio.TMP_SUFFIX}")) and checkpoints.load(run / "latest.pt")["step"] == 1


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", ".."])
def test_name_must_stay_inside_checkpoints_dir(demo_root, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as exit:
        parse_training(training_argv(demo_root / "unpaired", checkpoints_dir=tmp_path / "ck", name=name))
    assert exit.value.code == 2
    assert f"--name {name!r} must be a plain folder name" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists() and not (tmp_path / "x").exists()


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(demo_root, tmp_path, caplog, monkeypatch):
    train(tiny_options(demo_root / "unpaired", tmp_path, max_steps=1))
    run = tmp_path / "run"
    before = (run / "latest.pt").read_bytes()
    fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(run / ".latest.pt.")) and ".sha256." not in \
                os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    code, errors = cli_train(demo_root / "unpaired", tmp_path, caplog, max_steps=2, continue_train=True)
    assert code == 1
    assert errors == [f"error: cannot write {run / 'latest.pt'}: No space left on device; the previous file is kept. "
                      "Free disk space or choose a writable folder, then run again"]
    assert (run / "latest.pt").read_bytes() == before and integrity.verify(run / "latest.pt")
    assert not list(run.glob(f"*{fileio.TMP_SUFFIX}"))


def test_read_only_checkpoints_dir_is_one_line(demo_root, tmp_path, caplog, monkeypatch):
    # Tests may run as root, for whom permissions do not make a folder read-only: the file system says so.
    real_open = os.open

    def read_only(path, *args, **kw):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)
    code, errors = cli_train(demo_root / "unpaired", tmp_path / "ro", caplog, max_steps=1)
    assert code == 1
    assert errors == [f"error: cannot create the run folder {tmp_path / 'ro' / 'run'}: Read-only file system; "
                      "choose a writable --checkpoints_dir"]


def test_a_resumed_run_logs_each_step_once(demo_root, tmp_path):
    train(tiny_options(demo_root / "unpaired", tmp_path, max_steps=2))
    log = reports.CsvLog(tmp_path / "run" / "loss_log.csv", reports.read_csv(tmp_path / "run" / "loss_log.csv")[0])
    for step in (3, 4):  # logged by a session that died before its next save
        log.write({"step": step, "epoch": 2})
    train(tiny_options(demo_root / "unpaired", tmp_path, max_steps=4, continue_train=True))
    rows = reports.read_csv(tmp_path / "run" / "loss_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(r["G_A"] for r in rows)  # the rows of steps 3 and 4 are the resumed run's own
