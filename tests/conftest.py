import argparse
import random

import numpy as np
import pytest
import torch


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


def training_options(dataroot, arch: str = "cyclegan", **overrides) -> argparse.Namespace:
    """Parsed training options for a tiny, fast run on `dataroot`."""
    from pyi2i.options import parse_training

    return parse_training(training_argv(dataroot, arch, **overrides))


def data_opt(dataroot, **overrides) -> argparse.Namespace:
    """The data options with the original release's training defaults, scaled down to tiny images."""
    opt = dict(dataroot=str(dataroot), phase="train", dataset_mode="aligned", direction="AtoB",
               preprocess="resize_and_crop", load_size=20, crop_size=16, no_flip=False, input_nc=3,
               output_nc=3, max_dataset_size=float("inf"), serial_batches=False, skip_bad_images=False, seed=0)
    return argparse.Namespace(**{**opt, **overrides})


@pytest.fixture(scope="session")
def trained_run(demo_root, tmp_path_factory):
    """A finished two-epoch CycleGAN run on the demo data, evaluated after each epoch with the small
    stand-in feature network: the run folder."""
    from pyi2i.engine.trainer import train

    checkpoints_dir = tmp_path_factory.mktemp("runs")
    train(training_options(demo_root / "unpaired", checkpoints_dir=checkpoints_dir, eval_freq=1,
                           feature_extractor="stand_in_features:tiny_features"))
    return checkpoints_dir / "run"
