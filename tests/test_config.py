"""The typed configuration: sections and their checks, the command line generated from them, TOML
files and their precedence, per-method defaults, the files a run writes, resuming with a saved
configuration, and the Python API."""

import ast
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pyi2i
from conftest import training_argv
from pyi2i.checkpoints import IncompatibleCheckpoint
from pyi2i.config import (
    ConfigError, DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig, TranslateConfig, train_opt_text,
)
from pyi2i.train import fit

PACKAGE = Path(pyi2i.__file__).parent
TINY_RUN = dict(max_steps=2, eval_freq=0, no_tensorboard=True)


# ---- sections and checks ----

@pytest.mark.parametrize("build, message", [
    (lambda: ModelConfig(ngf=0), "--ngf must be a positive integer, got 0"),
    (lambda: ModelConfig(netG="resnet_5blocks"), "--netG must be one of"),
    (lambda: LossConfig(lambda_A=-1.0), "--lambda_A must be at least 0"),
    (lambda: OptimConfig(lr=float("nan")), "--lr must be a number, got nan"),
    (lambda: OptimConfig(n_epochs="10"), "--n_epochs must be int, got '10'"),
    (lambda: DataConfig(batch_size=True), "--batch_size must be int"),
    (lambda: TranslateConfig(checkpoint="g.pth", input="in"), "--output is required"),
])
def test_every_section_checks_its_values_however_it_is_built(build, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build()


def test_ints_are_accepted_for_float_options():
    assert OptimConfig(lr=1).lr == 1.0 and isinstance(OptimConfig(lr=1).lr, float)


@pytest.mark.parametrize("arch, expected", [
    ("cyclegan", dict(netG="resnet_9blocks", norm="instance", gan_mode="lsgan", dataset_mode="unaligned",
                      pool_size=50, no_dropout=True)),
    ("pix2pix", dict(netG="unet_256", norm="batch", gan_mode="vanilla", dataset_mode="aligned",
                     pool_size=0, no_dropout=False)),
])
def test_method_defaults_are_resolved_in_one_place(arch, expected, tmp_path):
    config = TrainConfig(model=ModelConfig(arch=arch), data=DataConfig(dataroot=str(tmp_path / "facades")))
    flat = config.flat()
    assert all(flat[k] is None for k in expected)  # nothing chosen before resolving
    resolved = config.resolve().flat()
    assert {k: resolved[k] for k in expected} == expected
    assert resolved["load_size"] == 286 and resolved["crop_size"] == 256 and resolved["n_epochs"] == 100
    assert resolved["name"] == f"facades_{arch}"
    # what the user gives wins over the method's default
    assert config.replace(netG="unet_128", pool_size=3).resolve().flat()["netG"] == "unet_128"
    assert config.resolve() == config.resolve().resolve()


def test_demo_defaults_apply_only_without_a_dataroot():
    demo = TrainConfig().resolve()
    assert demo.data.dataroot == "datasets/demo/unpaired" and demo.run.name == "cyclegan_demo"
    assert (demo.model.netG, demo.model.ngf, demo.data.crop_size) == ("resnet_6blocks", 32, 64)
    assert TrainConfig().demo_defaults() == ["load_size", "crop_size", "ngf", "ndf", "netG", "n_epochs",
                                             "n_epochs_decay", "print_freq", "eval_freq"]
    assert TrainConfig(model=ModelConfig(ngf=16)).resolve().model.ngf == 16


@pytest.mark.parametrize("options, message", [
    (dict(crop_size=300), "--crop_size 300 is larger than --load_size 286"),
    (dict(arch="pix2pix", dataset_mode="unaligned"), "pix2pix trains on paired data"),
    (dict(name="../elsewhere"), "must be a plain folder name"),
    (dict(input_nc=1), "--lambda_identity 0 for different channel counts"),
    (dict(n_epochs=0, n_epochs_decay=0), "must be at least 1"),
])
def test_combinations_that_cannot_work_are_refused(options, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data=DataConfig(dataroot=str(tmp_path))).replace(**options).resolve()


# ---- the command line ----

def test_the_command_line_sets_only_what_it_names():
    config = TrainConfig.from_args(["--model", "pix2pix", "--lambda_L1", "50", "--cuda-graphs", "--amp",
                                    "--no_tensorboard", "--max_dataset_size", "inf"])
    assert config.model.arch == "pix2pix" and config.loss.lambda_L1 == 50.0
    assert config.speed.cuda_graphs and config.speed.amp == "bf16" and config.run.tensorboard is False
    assert config.model.netG is None  # left for resolve()
    assert TrainConfig.from_args(["--epoch", "3"]).run.epoch == "3"  # the weights to load, not --epoch_count
    assert TrainConfig.from_args(["--epoch", "3"]).optim.epoch_count == 1
    assert TrainConfig.from_args(["--gpu_ids", "-1"]).run.device == "cpu"
    assert TrainConfig.from_args(["--gpu_ids", "2"]).run.device == "cuda:2"


@pytest.mark.parametrize("argv, message", [
    (["--epoch_c", "3"], "unrecognized arguments: --epoch_c"),  # never taken as --epoch_count
    (["--lambda_iden", "3"], "unrecognized arguments"),
    (["--gpu_ids", "0,1"], "torchrun --nproc_per_node=2"),
    (["--ngf", "0"], "--ngf must be a positive integer"),
])
def test_the_command_line_refuses_what_it_cannot_honour(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        TrainConfig.from_args(argv)
    assert exit.value.code == 2 and message in capsys.readouterr().err


# ---- files ----

def test_toml_round_trips_and_the_command_line_overrides_the_file(tmp_path):
    config = TrainConfig.from_args(["--arch", "pix2pix", "--dataroot", str(tmp_path), "--lr", "0.001",
                                    "--n_epochs", "7", "--amp", "fp16"]).resolve()
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.from_toml(path) == config
    assert TrainConfig.from_toml(path).to_toml() == config.to_toml()
    mixed = TrainConfig.from_args(["--config", str(path), "--n_epochs", "3"])
    assert mixed.optim.n_epochs == 3 and mixed.optim.lr == 0.001 and mixed.speed.amp == "fp16"
    assert mixed.model.arch == "pix2pix"


@pytest.mark.parametrize("text, message", [
    ("[model]\nlr = 0.1\n", r"unknown option\(s\) in \[model\]: lr \(belongs in \[optim\]\)"),
    ("[modle]\narch = 'pix2pix'\n", r"unknown section\(s\) modle"),
    ("[optim]\nn_epochs = 'ten'\n", "--n_epochs must be int"),
    ("[optim\n", "is not valid TOML"),
])
def test_a_bad_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_toml(path)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


def tiny_argv(demo_root, tmp_path, **overrides):
    return training_argv(demo_root / "unpaired", checkpoints_dir=tmp_path, **{**TINY_RUN, **overrides})


def test_a_run_writes_its_resolved_configuration_and_training_from_it_reproduces_it(demo_root, tmp_path):
    run = fit(TrainConfig.from_args(tiny_argv(demo_root, tmp_path, name="first")))
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["model"]["netG"] == "resnet_6blocks" and saved["loss"]["pool_size"] == 50  # resolved defaults
    assert "continue_train" not in saved["run"]  # about one invocation, not the run
    text = (run / "config.toml").read_text()
    assert not any(word in text for word in ("time", "argv", "version"))

    again = fit(TrainConfig.from_args(["--config", str(run / "config.toml"), "--name", "second"]))
    assert again == tmp_path / "second"
    first, second = (tomllib.loads((d / "config.toml").read_text()) for d in (run, again))
    assert first["run"].pop("name") == "first" and second["run"].pop("name") == "second"
    assert first == second
    # the same training: the same losses
    assert (run / "loss_log.csv").read_text().splitlines()[1].split(",")[6:] == \
        (again / "loss_log.csv").read_text().splitlines()[1].split(",")[6:]

    opt_txt = (run / "train_opt.txt").read_text()
    assert opt_txt.startswith("----------------- Options ---------------")
    assert "netG: resnet_6blocks" in opt_txt and "[default: resnet_9blocks]" in opt_txt
    assert opt_txt == train_opt_text(TrainConfig.from_toml(run / "config.toml"))


def test_continue_train_reads_the_saved_configuration_and_says_what_changes(demo_root, tmp_path, caplog):
    fit(TrainConfig.from_args(tiny_argv(demo_root, tmp_path, name="run", lr=0.0005)))
    # only the run's name: the rest comes from its config.toml, and --max_steps is this invocation's
    resumed = TrainConfig.from_args(["--name", "run", "--checkpoints_dir", str(tmp_path), "--continue_train",
                                     "--max_steps", "3", "--n_epochs", "2"])
    assert resumed.optim.lr == 0.0005 and resumed.data.dataroot == str(demo_root / "unpaired")
    assert resumed.optim.max_steps == 3 and resumed.optim.n_epochs == 2
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        fit(resumed)
    assert "continuing with changed options: --n_epochs 1 -> 2, --max_steps 2 -> 3" in caplog.text
    assert "resumed" in caplog.text and "step 2" in caplog.text
    saved = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert saved["optim"]["n_epochs"] == 2  # the run's configuration now

    changed = TrainConfig.from_args(["--name", "run", "--checkpoints_dir", str(tmp_path), "--continue_train",
                                     "--ngf", "8"])
    with pytest.raises(IncompatibleCheckpoint, match="--ngf 4 but this run has --ngf 8"):
        fit(changed)


def test_fit_trains_on_the_demo_data_from_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = pyi2i.fit(pyi2i.TrainConfig.from_args(["--max_steps", "2", "--eval_freq", "0", "--num_threads", "0",
                                                 "--no_progress"]))
    assert run == Path("checkpoints") / "cyclegan_demo"
    assert (run / "latest.pt").is_file() and (tmp_path / "datasets" / "demo" / "unpaired" / "trainA").is_dir()
    # keyword construction, per section
    config = pyi2i.TrainConfig(model=ModelConfig(arch="pix2pix"), optim=OptimConfig(max_steps=1))
    assert config.resolve().model.netG == "unet_128"


# ---- the face ----

BELOW_THE_FACE = ("engine", "data", "models", "ops")


def test_no_module_below_the_face_sees_argparse():
    offenders = []
    for folder in BELOW_THE_FACE:
        for path in (PACKAGE / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = {a.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                     for a in node.names} | {node.module for node in ast.walk(tree)
                                             if isinstance(node, ast.ImportFrom) and node.module}
            if "argparse" in names or "Namespace" in path.read_text():
                offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders, f"argparse below the command line: {offenders}"


def test_help_lists_the_options_by_section():
    r = subprocess.run([sys.executable, "-m", "pyi2i.train", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for section in ("model:", "data:", "loss:", "optim:", "speed:", "run:", "eval:"):
        assert section in r.stdout
    assert "--lambda_identity" in r.stdout and "--config FILE" in r.stdout and "(default 0.0002)" in r.stdout
