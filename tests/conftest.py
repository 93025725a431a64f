import random
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from pyi2i.config import DataConfig, TrainConfig


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """The built-in demo datasets, generated once per test session (small sizes)."""
    from pyi2i.data import make_demo

    root = tmp_path_factory.mktemp("demo")
    make_demo(root / "unpaired", "unpaired", size=32, n_train=8, n_test=4)
    make_demo(root / "paired", "paired", size=32, n_train=8, n_test=4)
    return root


def training_argv(dataroot, arch: str = "cyclegan", **overrides) -> list[str]:
    """Command-line options for a tiny, fast run on `dataroot`."""
    small = dict(load_size=36, crop_size=32, ngf=4, ndf=4, netG="resnet_6blocks",
                 num_threads=0, n_epochs=1, n_epochs_decay=1, print_freq=2, no_progress=True, name="run")
    if arch == "pix2pix":
        small.update(netG="unet_128", load_size=128, crop_size=128)
    small.update(overrides)
    argv = ["--arch", arch, "--dataroot", str(dataroot)]
    for key, value in small.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not False and value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def training_options(dataroot, arch: str = "cyclegan", **overrides) -> "TrainConfig":
    """The resolved configuration of a tiny, fast run on `dataroot`, from command-line options."""
    from pyi2i.config import TrainConfig

    return TrainConfig.from_args(training_argv(dataroot, arch, **overrides)).resolve()


def data_config(dataroot, **overrides) -> "DataConfig":
    """The data options with the original release's training defaults, scaled down to tiny images."""
    from pyi2i.config import DataConfig

    data = dict(dataroot=str(dataroot), dataset_mode="aligned", load_size=20, crop_size=16)
    return DataConfig(**{**data, **overrides})


def tiny_dataset(dataroot, *, input_nc: int = 3, output_nc: int = 3, seed: int = 0, **overrides):
    """The dataset of `data_config(dataroot, **overrides)`, with these channels and seed."""
    from pyi2i.data import create_dataset

    return create_dataset(data_config(dataroot, **overrides), input_nc=input_nc, output_nc=output_nc, seed=seed)


@pytest.fixture(scope="session")
def trained_run(demo_root, tmp_path_factory):
    """A finished two-epoch CycleGAN run on the demo data, evaluated after each epoch with the small
    stand-in feature network: the run folder."""
    from pyi2i.engine.trainer import train

    checkpoints_dir = tmp_path_factory.mktemp("runs")
    train(training_options(demo_root / "unpaired", checkpoints_dir=checkpoints_dir, eval_freq=1,
                           feature_extractor="stand_in_features:tiny_features"))
    return checkpoints_dir / "run"
