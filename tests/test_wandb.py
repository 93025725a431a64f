"""--use_wandb: a run logged in wandb's offline mode, read back from the file wandb writes."""

import json
import sys
import time

import pytest

from conftest import training_argv, training_options
from pyi2i.cli import run_cli
from pyi2i.engine.trainer import train
from pyi2i.errors import UserError
from pyi2i.train import main
from pyi2i.wandb_log import ID_FILE

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2 as wandb_pb  # noqa: E402

# The .wandb file is a LevelDB-style log: a 7-byte file header, then records in 32 KiB blocks, each
# with a 7-byte header (CRC, length, type) and split across blocks when long.
FILE_HEADER, BLOCK, RECORD_HEADER = 7, 32768, 7
FULL, LAST = 1, 4


def wandb_records(path):
    """The protobuf records of a .wandb file."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, payload = FILE_HEADER, b""
    while pos + RECORD_HEADER <= len(data):
        if BLOCK - pos % BLOCK < RECORD_HEADER:  # the end of a block, padded
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if pos + RECORD_HEADER + length > len(data):  # still being written
            return
        payload += data[pos + RECORD_HEADER:pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind in (FULL, LAST):
            yield wandb_pb.Record.FromString(payload)
            payload = b""


def finished_records(folder, timeout=60.0):
    """The records of an offline run folder's .wandb file, once it is whole: wandb's writer process
    may still be writing it when finish() returns."""
    (run_file,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(run_file))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def read_run(folder):
    """(run record, {step: {key: value}}) of an offline run folder."""
    run, history = None, {}
    for record in finished_records(folder):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history[record.history.step.num] = {"/".join(item.nested_key) or item.key: json.loads(item.value_json)
                                                for item in record.history.item}
    return run, history


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb in offline mode, its settings and caches kept in tmp_path; wandb reads its environment
    once per process, so it is reset after each test."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    yield
    wandb.teardown()


def tiny_wandb_run(demo_root, tmp_path, **overrides):
    """Four steps an epoch, losses every two."""
    options = dict(checkpoints_dir=tmp_path / "runs", use_wandb=True, max_dataset_size=4, n_epochs=1, n_epochs_decay=1,
                   eval_freq=0)
    return training_options(demo_root / "unpaired", **{**options, **overrides})


def test_offline_run_holds_losses_metrics_samples_and_the_configuration(demo_root, tmp_path, monkeypatch,
                                                                         offline_wandb):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    train(tiny_wandb_run(demo_root, tmp_path, n_epochs_decay=0, lambda_A=7.5, wandb_project_name="facades"))
    run_id = (tmp_path / "runs" / "run" / ID_FILE).read_text().strip()
    (folder,) = (tmp_path / "wandb_dir" / "wandb").glob(f"offline-run-*-{run_id}")
    run, history = read_run(folder)

    assert (run.run_id, run.project, run.display_name) == (run_id, "facades", "run")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["lambda_A"] == 7.5 and config["netG"] == "resnet_6blocks" and config["use_wandb"] is True
    assert sorted(history) == [2, 4]  # the steps of the loss log and of TensorBoard
    losses = {f"loss/{name}" for name in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")}
    assert losses | {"train/lr", "train/images_per_s"} <= history[2].keys()
    epoch_end = history[4]
    assert {"metrics/heldout_l1", "train/epoch_images_per_s"} <= epoch_end.keys()
    assert epoch_end["samples/_type"] == "image-file"
    assert (folder / "files" / epoch_end["samples/path"]).is_file()


def test_a_resumed_run_logs_to_the_same_wandb_run(demo_root, tmp_path, offline_wandb):
    train(tiny_wandb_run(demo_root, tmp_path, max_steps=2))
    run_dir = tmp_path / "runs" / "run"
    run_id = (run_dir / ID_FILE).read_text().strip()
    train(tiny_wandb_run(demo_root, tmp_path, max_steps=6, continue_train=True))

    assert (run_dir / ID_FILE).read_text().strip() == run_id
    sessions = sorted((run_dir / "wandb").glob("offline-run-*"))  # without WANDB_DIR: in the run folder
    assert [s.name.endswith(f"-{run_id}") for s in sessions] == [True, True]
    (first, first_history), (resumed, resumed_history) = map(read_run, sessions)
    assert first.run_id == resumed.run_id == run_id
    assert sorted(first_history) == [2] and sorted(resumed_history) == [4, 6]
    assert json.loads(next(u.value_json for u in resumed.config.update if u.key == "max_steps")) == 6


def test_missing_wandb_is_a_clear_error_before_training(demo_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now fails, as when it is not installed
    with pytest.raises(UserError, match=r'--use_wandb needs the wandb package .*pip install "pyi2i\[wandb\]"'):
        train(tiny_wandb_run(demo_root, tmp_path, name="first"))
    run_dir = tmp_path / "runs" / "first"
    assert not (run_dir / "latest.pt").exists() and not (run_dir / "loss_log.csv").exists()

    argv = training_argv(demo_root / "unpaired", checkpoints_dir=tmp_path / "runs", name="cli", use_wandb=True)
    assert run_cli(lambda: main(argv)) == 1
    assert 'pip install "pyi2i[wandb]"' in caplog.text and "Traceback" not in caplog.text


def test_online_without_an_account_says_how_to_log_in_or_go_offline(demo_root, tmp_path, monkeypatch, offline_wandb):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc holding a key
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    with pytest.raises(UserError, match=r"wandb could not start a run: .*`wandb login`.*WANDB_MODE=offline"):
        train(tiny_wandb_run(demo_root, tmp_path))
