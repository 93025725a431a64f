"""Command-line options, named as in the original release so existing command lines work.

Per-architecture defaults (pix2pix: unet_256, batch norm, vanilla GAN, aligned data, no pool,
dropout on; CycleGAN: resnet_9blocks, instance norm, lsgan, unaligned data, pool 50, no dropout)
apply to every option the user did not give.
"""

from __future__ import annotations

import argparse
import math
import os

from pyi2i.data.dali import LOADERS
from pyi2i.models import DISCRIMINATORS, GENERATORS, INIT_TYPES, NORMS
from pyi2i.ops import GAN_MODES, IMPLS

ARCHS = ("cyclegan", "pix2pix")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
LR_POLICIES = ("linear", "step", "plateau", "cosine")

ARCH_DEFAULTS = {
    "cyclegan": dict(netG="resnet_9blocks", norm="instance", gan_mode="lsgan", dataset_mode="unaligned",
                     pool_size=50, no_dropout=True),
    "pix2pix": dict(netG="unet_256", norm="batch", gan_mode="vanilla", dataset_mode="aligned",
                    pool_size=0, no_dropout=False),
}

# With no --dataroot, training uses the built-in demo data (small images): these defaults keep a
# CPU run to minutes. Each applies only where the user did not give the option.
DEMO_DEFAULTS = {
    "cyclegan": dict(load_size=72, crop_size=64, ngf=32, ndf=32, netG="resnet_6blocks", n_epochs=3, n_epochs_decay=2,
                     print_freq=20, eval_freq=1),
    "pix2pix": dict(load_size=142, crop_size=128, ngf=32, ndf=32, netG="unet_128", n_epochs=3, n_epochs_decay=2,
                    print_freq=20, eval_freq=1),
}
# Defaults of options that the tables above may set; they apply last.
COMMON_DEFAULTS = dict(load_size=286, crop_size=256, ngf=64, ndf=64, n_epochs=100, n_epochs_decay=100, print_freq=100,
                       eval_freq=5)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def dataset_size(text: str) -> float:
    return math.inf if text in ("inf", "float('inf')") else positive_int(text)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Network options shared by training and inference."""
    g = p.add_argument_group("networks")
    g.add_argument("--input_nc", type=positive_int, default=3, help="channels of input images (1: grayscale)")
    g.add_argument("--output_nc", type=positive_int, default=3, help="channels of output images (1: grayscale)")
    g.add_argument("--ngf", type=positive_int, default=None, help="generator filters in the last conv layer (default 64)")
    g.add_argument("--ndf", type=positive_int, default=None, help="discriminator filters in the first conv layer (default 64)")
    g.add_argument("--netG", choices=GENERATORS, help="generator architecture (default: per --arch)")
    g.add_argument("--netD", choices=DISCRIMINATORS, default="basic", help="discriminator architecture")
    g.add_argument("--n_layers_D", type=positive_int, default=3, help="discriminator layers with --netD n_layers")
    g.add_argument("--norm", choices=NORMS, help="normalisation (default: per --arch)")
    g.add_argument("--init_type", choices=INIT_TYPES, default="normal", help="weight initialisation")
    g.add_argument("--init_gain", type=float, default=0.02, help="scale for normal, xavier and orthogonal init")
    g.add_argument("--no_dropout", action="store_true", default=None, help="no dropout in the generator")
    g.add_argument("--impl", choices=IMPLS, default="auto", help="op backend (PYI2I_IMPL overrides)")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Dataset and preprocessing options shared by training and inference."""
    g = p.add_argument_group("data")
    g.add_argument("--dataroot", help="dataset folder (default for training: the built-in demo data)")
    g.add_argument("--dataset_mode", choices=("aligned", "unaligned", "single"), help="default: per --arch")
    g.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB", help="which domain is the input")
    g.add_argument("--serial_batches", action="store_true", help="take images in order instead of shuffled")
    g.add_argument("--num_threads", type=non_negative_int, default=4,
                   help="data loading worker processes (torch loader) or CPU threads (DALI)")
    g.add_argument("--loader", choices=LOADERS, default="auto",
                   help="torch: PIL in DataLoader workers; dali: NVIDIA DALI, decoding on the GPU "
                        "(on CPU threads without one); auto: dali on a GPU when it is installed, else torch")
    g.add_argument("--batch_size", type=positive_int, default=1)
    g.add_argument("--load_size", type=positive_int, default=None, help="scale images to this size (default 286)")
    g.add_argument("--crop_size", type=positive_int, default=None, help="then crop to this size (default 256)")
    g.add_argument("--max_dataset_size", type=dataset_size, default=math.inf, help="use at most this many images")
    g.add_argument("--preprocess", choices=PREPROCESS, default="resize_and_crop", help="scaling and cropping")
    g.add_argument("--no_flip", action="store_true", help="no random horizontal flips")
    g.add_argument("--skip_bad_images", action="store_true",
                   help="skip unreadable images (counted and reported) instead of stopping")


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--gpu_ids", help="original-release spelling of --device: '-1' for CPU, '0' for cuda:0")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, data order and augmentation")
    g.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"), default=None,
                   help="mixed precision on any device: bf16 autocast (default) or fp16 with a gradient scaler")
    g.add_argument("--cuda-graphs", "--cuda_graphs", dest="cuda_graphs", action="store_true",
                   help="capture the whole training step in a CUDA graph (CUDA only)")
    g.add_argument("--channels_last", action="store_true", help="networks and images in channels_last layout")
    g.add_argument("--compile", action="store_true", help="torch.compile the networks")
    g.add_argument("--profile", metavar="DIR", help="write a torch.profiler trace of a few steps to DIR and stop")


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """Image-quality metrics, shared by training (--eval_freq) and python -m pyi2i.evaluate."""
    g = p.add_argument_group("metrics")
    g.add_argument("--inception_weights", metavar="FILE",
                   help="Inception-v3 weights for FID/KID (default: torch-fidelity's file in the torch hub cache, "
                        "downloaded there on first use)")
    g.add_argument("--feature_extractor", metavar="MODULE:CALLABLE",
                   help="a feature network to use instead of Inception-v3 (FIDs then compare only with each other)")
    g.add_argument("--no_lpips", action="store_true", help="do not compute LPIPS")


def training_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.train", description="Train pix2pix or CycleGAN.")
    p.add_argument("--arch", "--model", dest="arch", choices=ARCHS, default="cyclegan", help="method to train")
    p.add_argument("--name", help="run name: checkpoints go to CHECKPOINTS_DIR/NAME (default: ARCH_demo or the dataroot's name)")
    p.add_argument("--checkpoints_dir", default="./checkpoints", help="where runs are saved")
    add_model_options(p)
    add_data_options(p)
    add_runtime_options(p)
    g = p.add_argument_group("training")
    g.add_argument("--phase", default="train", help="dataset split to train on")
    g.add_argument("--n_epochs", type=non_negative_int, default=None, help="epochs at the initial learning rate (default 100)")
    g.add_argument("--n_epochs_decay", type=non_negative_int, default=None, help="epochs decaying the rate to zero (default 100)")
    g.add_argument("--epoch_count", type=positive_int, default=1, help="number of the first epoch")
    g.add_argument("--max_steps", type=positive_int, help="stop after this many iterations in total (short runs)")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    g.add_argument("--lr", type=non_negative_float, default=0.0002, help="initial Adam learning rate")
    g.add_argument("--gan_mode", choices=GAN_MODES, help="GAN objective (default: per --arch)")
    g.add_argument("--pool_size", type=non_negative_int, help="image pool size, 0 for none (default: per --arch)")
    g.add_argument("--lr_policy", choices=LR_POLICIES, default="linear", help="learning rate schedule")
    g.add_argument("--lr_decay_iters", type=positive_int, default=50, help="epochs between x0.1 steps (step policy)")
    g.add_argument("--lambda_A", type=non_negative_float, default=10.0, help="CycleGAN: weight of cycle loss A->B->A")
    g.add_argument("--lambda_B", type=non_negative_float, default=10.0, help="CycleGAN: weight of cycle loss B->A->B")
    g.add_argument("--lambda_identity", type=non_negative_float, default=0.5,
                   help="CycleGAN: weight of the identity loss, relative to lambda_A/lambda_B")
    g.add_argument("--lambda_L1", type=non_negative_float, default=100.0, help="pix2pix: weight of the L1 loss")
    g.add_argument("--lambda_gp", type=non_negative_float, default=10.0, help="gradient penalty weight (wgangp)")
    g.add_argument("--continue_train", action="store_true", help="resume from the run's latest checkpoint")
    g.add_argument("--print_freq", type=positive_int, default=None, help="iterations between loss reports (default 100)")
    g.add_argument("--save_latest_freq", type=positive_int, default=5000, help="iterations between latest saves")
    g.add_argument("--save_epoch_freq", type=positive_int, default=5, help="epochs between numbered checkpoints")
    g.add_argument("--no_progress", action="store_true", help="no progress bar (logs only)")
    g = p.add_argument_group("evaluation and reports")
    g.add_argument("--eval_freq", type=non_negative_int, default=None,
                   help="epochs between evaluations on the test split, and after the last epoch; 0: never (default 5)")
    g.add_argument("--tensorboard", action="store_true", default=None,
                   help="write TensorBoard event files to the run folder (default: on when TensorBoard is installed)")
    g.add_argument("--no_tensorboard", dest="tensorboard", action="store_false", help="no TensorBoard event files")
    add_evaluation_options(p)
    return p


def is_plain_name(name: str) -> bool:
    """True for a name that stays one folder inside its parent: no separators, not '.' or '..'."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return bool(name) and name not in (".", "..") and "\0" not in name and not any(c in name for c in separators)


def apply_defaults(opt: argparse.Namespace, table: dict) -> list[str]:
    """Fill options the user left unset (None) from `table`; returns the names filled."""
    filled = []
    for key, value in table.items():
        if getattr(opt, key, None) is None:
            setattr(opt, key, value)
            filled.append(key)
    return filled


def parse_training(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed training options with per-architecture (and, without --dataroot, demo) defaults."""
    parser = training_parser()
    opt = parser.parse_args(argv)
    opt.demo = opt.dataroot is None
    opt.demo_defaults = apply_defaults(opt, DEMO_DEFAULTS[opt.arch]) if opt.demo else []
    apply_defaults(opt, ARCH_DEFAULTS[opt.arch])
    apply_defaults(opt, COMMON_DEFAULTS)
    if opt.gpu_ids is not None:
        opt.device = "cpu" if opt.gpu_ids.strip().startswith("-1") else f"cuda:{opt.gpu_ids.split(',')[0].strip()}"
    check(parser, opt)
    return opt


def check(parser: argparse.ArgumentParser, opt: argparse.Namespace) -> None:
    """Reject option combinations that cannot work, with the fix."""
    if opt.name is not None and not is_plain_name(opt.name):
        parser.error(f"--name {opt.name!r} must be a plain folder name (no /, no .., not absolute): the run is "
                     "saved in CHECKPOINTS_DIR/NAME; use --checkpoints_dir to choose where")
    if opt.preprocess in ("resize_and_crop", "scale_width_and_crop") and opt.crop_size > opt.load_size:
        parser.error(f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: "
                     "crops are taken from the resized image, so use --crop_size <= --load_size")
    if opt.dataset_mode == "single":
        parser.error("--dataset_mode single holds one domain only: it is for inference (python -m pyi2i.translate)")
    if opt.arch == "pix2pix" and opt.dataset_mode != "aligned":
        parser.error("pix2pix trains on paired data: use --dataset_mode aligned (A|B images side by side)")
    if opt.n_epochs + opt.n_epochs_decay < 1:
        parser.error("--n_epochs + --n_epochs_decay must be at least 1")
