"""The typed configuration of a run: one frozen dataclass per concern, gathered in `TrainConfig`.

Fields keep the original release's option names (`netG`, `lambda_A`, `pool_size`, ...), so a user
recognises them on the command line, in `config.toml` and in the reports. Each field's metadata
holds its help text and its checks: the command line (`pyi2i.options`) is generated from them, and
a value from a file or from Python goes through the same checks.

A field left at None takes a default that depends on the method or on the demo data; `resolve`
fills them all in one place, and the resolved values are what a run uses, saves and reports.

    config = TrainConfig.from_args(["--arch", "pix2pix", "--dataroot", "facades"])
    config = TrainConfig.from_toml("run.toml")
    config = TrainConfig(model=ModelConfig(arch="pix2pix"), data=DataConfig(dataroot="facades"))
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pyi2i.data.dali import LOADERS
from pyi2i.data.transforms import PREPROCESS_MODES
from pyi2i.errors import UserError
from pyi2i.models import DISCRIMINATORS, GENERATORS, INIT_TYPES, NORMS
from pyi2i.ops import GAN_MODES, IMPLS
from pyi2i.registry import DATASETS, METHODS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

DIRECTIONS = ("AtoB", "BtoA")
# The 2025 release's multi-GPU norm names: batch statistics shared over the processes is our
# syncbatch; instance norm has no statistics to share, so sync_instance is instance.
NORM_SPELLINGS = {"sync_batch": "syncbatch", "sync_instance": "instance"}
LR_POLICIES = ("linear", "step", "plateau", "cosine")
AMP_MODES = ("bf16", "fp16")


class ConfigError(UserError, ValueError):
    """A value, a combination of values or a configuration file that cannot work; the message
    names the option and the fix."""


def option(default: Any, help: str, *, choices: tuple | Callable[[], tuple] | None = None, min: float | None = None,
           persist: bool = True, canonical: Callable[[Any], Any] | None = None, hints: dict | None = None,
           **cli: Any) -> Any:
    """A configuration field: its default, help text and checks. `choices` may be a function (names
    that plug-ins add); `canonical` maps another spelling to the value kept (the original release's
    names); `hints` says more for a value that is refused. `persist=False` keeps the field out of
    config.toml (it is about one invocation, not the run); `cli` holds extra argparse settings
    (flags, nargs, const) for the command line."""
    return field(default=default, metadata=dict(help=help, choices=choices, min=min, persist=persist, cli=cli,
                                                canonical=canonical, hints=hints or {}))


class Section:
    """Checks every field against its type, choices and minimum when built, however it was built."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    def to_dict(self, persistent_only: bool = False) -> dict[str, Any]:
        """The set values (None left out, as TOML has no null)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None and (f.metadata["persist"] or not persistent_only)}


def _base_type(hint) -> type:
    """int for `int`, `int | None`; the one non-None type of a field's annotation."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _checked(f: dataclasses.Field, hint, value):
    """`value` converted to the field's type where that is lossless (an int for a float field),
    or ConfigError naming the option."""
    if value is None:
        if type(None) in typing.get_args(hint) or f.default is None:
            return None
        raise ConfigError(f"--{f.name} needs a value")
    kind = _base_type(hint)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"--{f.name} must be {kind.__name__}, got {value!r} ({type(value).__name__})")
    meta = f.metadata
    if meta["canonical"] is not None:
        value = meta["canonical"](value)
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    if choices is not None and value not in choices:
        hint = meta["hints"].get(value, "")
        raise ConfigError(f"--{f.name} must be one of {', '.join(map(str, choices))}, got {value!r}"
                          + (f": {hint}" if hint else ""))
    if kind is float and math.isnan(value):
        raise ConfigError(f"--{f.name} must be a number, got nan")
    if meta["min"] is not None and value < meta["min"]:
        least = "a positive integer" if meta["min"] == 1 else f"at least {meta['min']}"
        raise ConfigError(f"--{f.name} must be {least}, got {value}")
    return value


@dataclass(frozen=True)
class ModelConfig(Section):
    """The method and its networks."""

    arch: str = option("cyclegan", "method to train (the original's cycle_gan is cyclegan)", choices=METHODS.spellings,
                       canonical=METHODS.canonical, flags=("--arch", "--model"),
                       hints={"test": "--model test runs a trained generator: python -m pyi2i.test"})
    input_nc: int | None = option(None, "channels of input images (1: grayscale; default 3, colorization 1)", min=1)
    output_nc: int | None = option(None, "channels of output images (1: grayscale; default 3, colorization 2)", min=1)
    ngf: int | None = option(None, "generator filters in the last conv layer (default 64)", min=1)
    ndf: int | None = option(None, "discriminator filters in the first conv layer (default 64)", min=1)
    netG: str | None = option(None, "generator architecture (default: per --arch)", choices=GENERATORS)
    netD: str = option("basic", "discriminator architecture", choices=DISCRIMINATORS)
    n_layers_D: int = option(3, "discriminator layers with --netD n_layers", min=1)
    norm: str | None = option(None, "normalisation (default: per --arch); the original's sync_batch is syncbatch, and "
                                    "its sync_instance is instance (which has no statistics to share)",
                              choices=lambda: (*NORMS, *NORM_SPELLINGS), canonical=lambda v: NORM_SPELLINGS.get(v, v))
    init_type: str = option("normal", "weight initialisation", choices=INIT_TYPES)
    init_gain: float = option(0.02, "scale for normal, xavier and orthogonal init", min=0)
    no_dropout: bool | None = option(None, "no dropout in the generator (default: per --arch)")


@dataclass(frozen=True)
class DataConfig(Section):
    """Where the images are, how they are preprocessed and how they are loaded."""

    dataroot: str | None = option(None, "dataset folder (default for training: the built-in demo data)")
    dataset_mode: str | None = option(None, "dataset layout (default: per --arch)", choices=DATASETS.spellings,
                                      canonical=DATASETS.canonical)
    direction: str = option("AtoB", "which domain is the input", choices=DIRECTIONS)
    phase: str = option("train", "dataset split to read")
    serial_batches: bool = option(False, "take images in order instead of shuffled")
    num_threads: int = option(4, "data loading worker processes (torch loader) or CPU threads (DALI)", min=0)
    loader: str = option("auto", "torch: PIL in DataLoader workers; dali: NVIDIA DALI, decoding on the GPU (on "
                                 "CPU threads without one); auto: dali on a GPU when it is installed, else torch",
                         choices=LOADERS)
    batch_size: int = option(1, "images per step", min=1)
    load_size: int | None = option(None, "scale images to this size (default 286)", min=1)
    crop_size: int | None = option(None, "then crop to this size (default 256)", min=1)
    max_dataset_size: float = option(math.inf, "use at most this many images", min=1)
    preprocess: str = option("resize_and_crop", "scaling and cropping", choices=PREPROCESS_MODES)
    no_flip: bool = option(False, "no random horizontal flips")
    skip_bad_images: bool = option(False, "skip unreadable images (counted and reported) instead of stopping")


@dataclass(frozen=True)
class LossConfig(Section):
    """The objective: GAN mode, loss weights and the image pool that feeds the discriminators."""

    gan_mode: str | None = option(None, "GAN objective (default: per --arch)", choices=GAN_MODES)
    lambda_A: float = option(10.0, "CycleGAN: weight of cycle loss A->B->A", min=0)
    lambda_B: float = option(10.0, "CycleGAN: weight of cycle loss B->A->B", min=0)
    lambda_identity: float = option(0.5, "CycleGAN: weight of the identity loss, relative to lambda_A/lambda_B", min=0)
    lambda_L1: float = option(100.0, "pix2pix: weight of the L1 loss", min=0)
    lambda_gp: float = option(10.0, "gradient penalty weight (wgangp)", min=0)
    pool_size: int | None = option(None, "image pool size, 0 for none (default: per --arch)", min=0)


@dataclass(frozen=True)
class OptimConfig(Section):
    """Adam, the learning-rate schedule and the length of training."""

    lr: float = option(0.0002, "initial Adam learning rate", min=0)
    beta1: float = option(0.5, "Adam beta1", min=0)
    lr_policy: str = option("linear", "learning rate schedule", choices=LR_POLICIES)
    lr_decay_iters: int = option(50, "epochs between x0.1 steps (step policy)", min=1)
    n_epochs: int | None = option(None, "epochs at the initial learning rate (default 100)", min=0)
    n_epochs_decay: int | None = option(None, "epochs decaying the rate to zero (default 100)", min=0)
    epoch_count: int = option(1, "number of the first epoch", min=1)
    max_steps: int | None = option(None, "stop after this many iterations in total (short runs)", min=1)


@dataclass(frozen=True)
class SpeedConfig(Section):
    """How fast the same computation runs: backends, precision, layout, graphs, compilation."""

    impl: str = option("auto", "op backend (PYI2I_IMPL overrides)", choices=IMPLS)
    amp: str | None = option(None, "mixed precision on any device: bf16 autocast (default) or fp16 with a gradient "
                                   "scaler", choices=AMP_MODES, nargs="?", const="bf16")
    cuda_graphs: bool = option(False, "capture the whole training step in a CUDA graph (CUDA only)",
                               flags=("--cuda-graphs", "--cuda_graphs"))
    channels_last: bool = option(False, "networks and images in channels_last layout")
    compile: bool = option(False, "torch.compile the networks")
    profile: str | None = option(None, "write a torch.profiler trace of a few steps to DIR and stop", metavar="DIR")


@dataclass(frozen=True)
class RunConfig(Section):
    """The run's identity and folders, device and seed, logging and saving."""

    name: str | None = option(None, "run name: checkpoints go to CHECKPOINTS_DIR/NAME (default: ARCH_demo or the "
                                    "dataroot's name)")
    checkpoints_dir: str = option("./checkpoints", "where runs are saved")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    seed: int = option(0, "seed for weights, data order and augmentation")
    continue_train: bool = option(False, "resume from the run's latest checkpoint, with its saved configuration "
                                         "(options given here override it; the architecture cannot change)",
                                  persist=False)
    print_freq: int | None = option(None, "iterations between loss reports (default 100)", min=1)
    save_latest_freq: int = option(5000, "iterations between latest saves", min=1)
    save_epoch_freq: int = option(5, "epochs between numbered checkpoints", min=1)
    no_progress: bool = option(False, "no progress bar (logs only)")
    tensorboard: bool | None = option(None, "write TensorBoard event files to the run folder (default: on when "
                                            "TensorBoard is installed)", negative="--no_tensorboard")
    display_freq: int = option(400, "iterations between sample grids in TensorBoard (and wandb); files in samples/ "
                                    "are written every epoch", min=1)
    no_html: bool = option(False, "no HTML report (index.html) in the run folder")
    save_by_iter: bool = option(False, "the saves every --save_latest_freq iterations also keep a copy named by the "
                                       "iteration (iter_N.pt, iter_N_net_*.pth)")
    suffix: str = option("", "appended to the name as NAME_SUFFIX, formatted with the options, e.g. "
                             "{netG}_size{load_size}")
    epoch: str = option("latest", "the weights to start from with --continue_train (and to test): latest or an "
                                  "epoch number")
    load_iter: int = option(0, "the weights saved at this iteration (--save_by_iter); 0: --epoch decides", min=0)
    verbose: bool = option(False, "log each network's layers at the start")

    @property
    def checkpoint_label(self) -> str:
        """The save to start from: iter_N with --load_iter N, else --epoch (latest or a number)."""
        return f"iter_{self.load_iter}" if self.load_iter > 0 else self.epoch
    use_wandb: bool = option(False, "also log losses, metrics, sample grids and the configuration to Weights & "
                                    "Biases (pip install \"pyi2i[wandb]\"); WANDB_MODE=offline logs without network")
    wandb_project_name: str = option("CycleGAN-and-pix2pix", "the Weights & Biases project of --use_wandb",
                                     metavar="PROJECT")


@dataclass(frozen=True)
class EvalConfig(Section):
    """The image metrics computed on the test split during training (and by pyi2i.evaluate)."""

    eval_freq: int | None = option(None, "epochs between evaluations on the test split, and after the last epoch; "
                                         "0: never (default 5)", min=0)
    inception_weights: str | None = option(None, "Inception-v3 weights for FID/KID (default: torch-fidelity's file "
                                                 "in the torch hub cache, downloaded there on first use)",
                                           metavar="FILE")
    feature_extractor: str | None = option(None, "a feature network to use instead of Inception-v3 (FIDs then "
                                                 "compare only with each other)", metavar="MODULE:CALLABLE")
    no_lpips: bool = option(False, "do not compute LPIPS")


@dataclass(frozen=True)
class DisplayConfig(Section):
    """The original release's visdom display, which pyi2i replaces with TensorBoard, wandb and the
    HTML report: these options are accepted, and a value other than the default is noted once."""

    display_id: int = option(1, "visdom window id (pyi2i: see TensorBoard, --use_wandb and index.html)")
    display_server: str = option("http://localhost", "visdom server (not used)")
    display_env: str = option("main", "visdom environment (not used)")
    display_port: int = option(8097, "visdom port (not used)")
    display_ncols: int = option(4, "images per row in visdom (sample grids show every image of the batch)")
    display_winsize: int = option(256, "display size of images in the HTML pages", min=1)
    update_html_freq: int = option(1000, "iterations between HTML updates (the report is updated every epoch)", min=1)


# What replaces the original's display, for the note a run writes when display options are given.
DISPLAY_NOTE = ("pyi2i has no visdom display: losses and sample grids go to TensorBoard (tensorboard --logdir "
                "CHECKPOINTS_DIR), to wandb with --use_wandb, and to the run's index.html, updated every epoch")


@dataclass(frozen=True)
class TranslateConfig(Section):
    """Inference with a trained generator (python -m pyi2i.translate): the training configuration's
    counterpart. The network options are read from the checkpoint; one given here must agree."""

    checkpoint: str | None = option(None, "pyi2i checkpoint (.pt), original *_net_G*.pth weights or an exported "
                                          ".safetensors file", required=True)
    input: str | None = option(None, "folder of images (searched recursively) or a video file", required=True)
    output: str | None = option(None, "folder for the results, or a video file for a video input", required=True)
    overwrite: bool = option(False, "replace outputs an earlier run left in --output")
    direction: str = option("AtoB", "CycleGAN checkpoints: AtoB uses G_A, BtoA uses G_B", choices=DIRECTIONS)
    net: str | None = option(None, "the generator of a training checkpoint (overrides --direction)",
                             choices=("G", "G_A", "G_B"))
    eval: bool = option(False, "eval mode: no dropout, batch norm running statistics")
    preprocess: str = option("resize_and_crop", "as in training; 'none' keeps each image's size (padded to what the "
                                                "generator needs)", choices=PREPROCESS_MODES)
    load_size: int = option(256, "scale images to this size", min=1)
    crop_size: int = option(256, "then crop to this size", min=1)
    num_test: int | None = option(None, "translate at most this many images", min=1)
    batch_size: int = option(8, "images per forward pass", min=1)
    workers: int | None = option(None, "threads decoding the inputs and threads encoding the outputs (default: the "
                                       "cores, at most 8)", min=1)
    amp: str = option("none", "autocast dtype of the forward pass", choices=("none", *AMP_MODES))
    cuda_graphs: bool = option(False, "replay the generator from a CUDA graph per batch shape (elsewhere the same "
                                      "logic runs eagerly)", flags=("--cuda-graphs", "--cuda_graphs"))
    tile: int | None = option(None, "translate images larger than this in overlapping tiles of this size", min=1)
    tile_overlap: int = option(32, "pixels shared by neighbouring tiles, blended smoothly", min=0)
    no_progress: bool = option(False, "no progress bar")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    loader: str = option("auto", "torch: PIL in threads; dali: NVIDIA DALI (decoding on the GPU); auto: dali on a "
                                 "GPU when installed", choices=LOADERS)
    impl: str = option("auto", "op backend (PYI2I_IMPL overrides)", choices=IMPLS)
    netG: str | None = option(None, f"{', '.join(GENERATORS)}, or resnet_<N>blocks / unet_<2**depth> (default: "
                                    "from the checkpoint)")
    ngf: int | None = option(None, "generator width (default: from the checkpoint)", min=1)
    norm: str | None = option(None, "normalisation (default: from the checkpoint)", choices=NORMS)
    input_nc: int | None = option(None, "input channels (default: from the checkpoint)", min=1)
    output_nc: int | None = option(None, "output channels (default: from the checkpoint)", min=1)
    no_dropout: bool | None = option(None, "the generator has no dropout layers (default: from the checkpoint)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("checkpoint", "input", "output"):
            if getattr(self, name) is None:
                raise ConfigError(f"--{name} is required")


@dataclass(frozen=True)
class TestOptions(Section):
    """What python -m pyi2i.test adds, as the original test.py: which trained generators to run on
    which split, and where the results go."""

    __test__ = False  # not a test class, for pytest
    model: str = option("test", "cycle_gan, pix2pix or colorization (their trained generators; names of methods "
                                "registered by plug-ins too), or test: one generator, with --dataset_mode single",
                        choices=lambda: ("test", *METHODS.spellings()),
                        canonical=lambda v: v if v == "test" else METHODS.canonical(v), flags=("--model", "--arch"))
    model_suffix: str = option("", "--model test: the weights are EPOCH_net_G{model_suffix}.pth (e.g. _A)")
    results_dir: str = option("./results/", "results go to RESULTS_DIR/NAME/PHASE_EPOCH/")
    aspect_ratio: float = option(1.0, "width/height of the written images (they are resized to it)", min=0.01)
    eval: bool = option(False, "eval mode: no dropout, batch norm's running statistics (the original tests in train "
                               "mode unless asked)")
    num_test: int = option(50, "how many images to test (the original's default: 50)", min=1)


@dataclass(frozen=True)
class TestConfig:
    """Everything python -m pyi2i.test needs: the original release's base options and its test
    options. The network options are read from the weights; one given must agree with them."""

    __test__ = False  # not a test class, for pytest
    test: TestOptions = field(default_factory=TestOptions)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(phase="test"))
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    run: RunConfig = field(default_factory=RunConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)


SECTIONS: dict[str, type[Section]] = {
    "model": ModelConfig, "data": DataConfig, "loss": LossConfig, "optim": OptimConfig,
    "speed": SpeedConfig, "run": RunConfig, "eval": EvalConfig, "display": DisplayConfig,
}
# Every option name is one field of one section, so that a flat name finds its section.
SECTION_OF: dict[str, str] = {f.name: s for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
assert len(SECTION_OF) == sum(len(dataclasses.fields(c)) for c in SECTIONS.values()), "option names must be unique"

# Defaults of options that a method's tables (its `defaults` and `demo_defaults`) may set; they apply last.
COMMON_DEFAULTS = dict(input_nc=3, output_nc=3, load_size=286, crop_size=256, ngf=64, ndf=64, n_epochs=100, n_epochs_decay=100, print_freq=100,
                       eval_freq=5)
# The built-in demo data, generated on first use: DEMO_ROOT/<kind of the method's demo>.
DEMO_ROOT = Path("datasets") / "demo"
# What a run's folder and name are; changing them gives the same run elsewhere.
LOCATION_KEYS = ("name", "checkpoints_dir")


def is_plain_name(name: str) -> bool:
    """True for a name that stays one folder inside its parent: no separators, not '.' or '..'."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return bool(name) and name not in (".", "..") and "\0" not in name and not any(c in name for c in separators)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, by section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    # The method's own options (its Options class; a [method] table in files), for methods that have any.
    method: Section | None = None

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"TrainConfig.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        options = METHODS.get(self.model.arch).Options
        if options is None and self.method is not None:
            raise ConfigError(f"--model {self.model.arch} takes no options of its own, but some were given: "
                              f"{', '.join(self.method.to_dict())}")
        if options is not None:
            if self.method is None:
                object.__setattr__(self, "method", options())
            elif not isinstance(self.method, options):
                raise ConfigError(f"the options of --model {self.model.arch} must be a {options.__name__}")

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, dict[str, Any]], source: str = "the configuration") -> "TrainConfig":
        """From {section: {option: value}}; unknown sections and options are errors naming `source`."""
        unknown = set(values) - set(SECTIONS) - {"method"}
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; the sections are "
                              f"{', '.join(SECTIONS)} and method")
        sections = {}
        for name, section_cls in SECTIONS.items():
            given = values.get(name, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of options")
            known = {f.name for f in dataclasses.fields(section_cls)}
            wrong = set(given) - known
            if wrong:
                hints = [f"{k} (belongs in [{SECTION_OF[k]}])" if k in SECTION_OF else k for k in sorted(wrong)]
                raise ConfigError(f"{source}: unknown option(s) in [{name}]: {', '.join(hints)}; "
                                  f"[{name}] takes {', '.join(sorted(known))}")
            sections[name] = section_cls(**given)
        given = values.get("method", {})
        if given:
            options = METHODS.get(sections["model"].arch).Options
            if options is None:
                raise ConfigError(f"{source}: --model {sections['model'].arch} takes no options of its own, but "
                                  f"[method] sets {', '.join(sorted(given))}")
            known = {f.name for f in dataclasses.fields(options)}
            if set(given) - known:
                raise ConfigError(f"{source}: --model {sections['model'].arch} has no option(s) "
                                  f"{', '.join(sorted(set(given) - known))}; it takes {', '.join(sorted(known))}")
            sections["method"] = options(**given)
        return cls(**sections)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "TrainConfig":
        """From a TOML file with the sections as tables ([model], [data], ...)."""
        return cls.from_dict(read_toml(path), source=str(path))

    @classmethod
    def from_args(cls, argv: list[str]) -> "TrainConfig":
        """From command-line options, exactly as `python -m pyi2i.train` takes them."""
        from pyi2i.options import parse_training

        return parse_training(argv)

    def replace(self, **options: Any) -> "TrainConfig":
        """A copy with some options changed, by their flat names: config.replace(lr=0.001, name="b")."""
        by_section: dict[str, dict[str, Any]] = {}
        method_fields = {f.name for f in dataclasses.fields(self.method)} if self.method is not None else set()
        for key, value in options.items():
            section = SECTION_OF.get(key) or ("method" if key in method_fields else None)
            if section is None:
                raise ConfigError(f"unknown option {key!r}")
            by_section.setdefault(section, {})[key] = value
        changes = {s: dataclasses.replace(getattr(self, s), **v) for s, v in by_section.items()}
        if "arch" in options and METHODS.canonical(options["arch"]) != self.model.arch and "method" not in changes:
            changes["method"] = None  # another method: its own options, at their defaults
        return dataclasses.replace(self, **changes)

    # -- reading --------------------------------------------------------------------------------
    def to_dict(self, persistent_only: bool = False) -> dict[str, dict[str, Any]]:
        values = {name: getattr(self, name).to_dict(persistent_only) for name in SECTIONS}
        if self.method is not None and dataclasses.fields(self.method):
            values["method"] = self.method.to_dict(persistent_only)
        return values

    def flat(self) -> dict[str, Any]:
        """{option: value} over all sections (the method's own options too), None included: what
        checkpoints and reports record."""
        sections = [getattr(self, s) for s in SECTIONS] + ([self.method] if self.method is not None else [])
        return {f.name: getattr(section, f.name) for section in sections for f in dataclasses.fields(section)}

    def to_toml(self) -> str:
        """The configuration as TOML: values only (no timestamps or versions), so the same run
        configured twice gives the same text."""
        import tomli_w

        return tomli_w.dumps(self.to_dict(persistent_only=True))

    @property
    def is_demo(self) -> bool:
        return self.data.dataroot is None

    @property
    def run_dir(self) -> Path:
        if self.run.name is None:
            raise ConfigError("the run has no name yet: resolve() the configuration first")
        return Path(self.run.checkpoints_dir) / self.run.name

    @property
    def last_epoch(self) -> int:
        return self.optim.epoch_count + self.optim.n_epochs + self.optim.n_epochs_decay - 1

    # -- resolving ------------------------------------------------------------------------------
    def resolve(self) -> "TrainConfig":
        """Every per-method and demo default filled in, the demo data's folder and the run's name
        chosen, and the combination checked. Idempotent."""
        arch = self.model.arch
        method = METHODS.get(arch)
        if self.is_demo and method.demo is None:
            raise ConfigError(f"--model {arch} has no built-in demo data: give --dataroot")
        flat = self.flat()
        filled: dict[str, Any] = {}
        tables = ([method.demo_defaults] if self.is_demo else []) + [method.defaults, COMMON_DEFAULTS]
        for table in tables:
            for key, value in table.items():
                if flat[key] is None and key not in filled:
                    filled[key] = value
        if self.is_demo:
            filled["dataroot"] = (DEMO_ROOT / method.demo[0]).as_posix()
        if self.run.name is None:
            dataroot = filled.get("dataroot", self.data.dataroot)
            filled["name"] = f"{arch}_demo" if self.is_demo else f"{Path(dataroot).resolve().name}_{arch}"
        resolved = self.replace(**filled)
        if resolved.run.suffix:  # applied once: the resolved name carries it
            name = suffixed(resolved.run.name, resolved.run.suffix, resolved.flat())
            resolved = resolved.replace(name=name, suffix="")
        resolved.check()
        return resolved

    def demo_defaults(self) -> list[str]:
        """The options that the demo defaults set (the unresolved ones), for the log."""
        flat = self.flat()
        return [k for k in METHODS.get(self.model.arch).demo_defaults if flat[k] is None] if self.is_demo else []

    def check(self) -> None:
        """Combinations that cannot work, with the fix (on a resolved configuration)."""
        d, m, o = self.data, self.model, self.optim
        if self.run.name is not None and not is_plain_name(self.run.name):
            raise ConfigError(f"--name {self.run.name!r} must be a plain folder name (no /, no .., not absolute): the "
                              "run is saved in CHECKPOINTS_DIR/NAME; use --checkpoints_dir to choose where")
        if d.preprocess in ("resize_and_crop", "scale_width_and_crop") and d.crop_size > d.load_size:
            raise ConfigError(f"--crop_size {d.crop_size} is larger than --load_size {d.load_size}: crops are taken "
                              "from the resized image, so use --crop_size <= --load_size")
        if d.dataset_mode == "single":
            raise ConfigError("--dataset_mode single holds one domain only: it is for inference "
                              "(python -m pyi2i.translate)")
        if m.arch == "pix2pix" and d.dataset_mode != "aligned":
            raise ConfigError("pix2pix trains on paired data: use --dataset_mode aligned (A|B images side by side)")
        if self.run.epoch != "latest" and not self.run.epoch.isdigit():
            raise ConfigError(f"--epoch {self.run.epoch!r} must be latest or an epoch number")
        if o.n_epochs + o.n_epochs_decay < 1:
            raise ConfigError("--n_epochs + --n_epochs_decay must be at least 1")
        if m.arch == "cyclegan" and self.loss.lambda_identity > 0 and m.input_nc != m.output_nc:
            raise ConfigError("the identity loss feeds B images to G_A, so it needs --input_nc == --output_nc; "
                              "set --lambda_identity 0 for different channel counts")


def train_opt_text(config: TrainConfig) -> str:
    """The original release's PHASE_opt.txt: every option's value, with its default where they
    differ (the default being what the method and data would choose on their own)."""
    defaults = TrainConfig(model=ModelConfig(arch=config.model.arch),
                           data=DataConfig(dataroot=config.data.dataroot)).resolve().flat()
    lines = ["----------------- Options ---------------"]
    for key, value in sorted(config.flat().items(), key=lambda kv: kv[0].lower()):
        default = defaults.get(key)
        comment = "" if value == default or key in ("name", "dataroot") else f"\t[default: {default}]"
        lines.append(f"{key:>25}: {str(value):<30}{comment}")
    lines.append("----------------- End -------------------")
    return "\n".join(lines) + "\n"


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML file's tables; ConfigError for a missing or malformed file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None


def merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{section: {option: value}} layers merged, later ones winning option by option."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def suffixed(name: str, suffix: str, values: dict[str, Any]) -> str:
    """NAME_SUFFIX with the suffix formatted with the options, as the original's --suffix."""
    try:
        return f"{name}_{suffix.format(**values)}"
    except (KeyError, IndexError, ValueError) as e:
        why = f"{e.args[0]!r} is not an option" if isinstance(e, KeyError) else str(e)
        raise ConfigError(f"--suffix {suffix!r}: {why}; write options in braces, e.g. {{netG}}_size{{load_size}}") \
            from None


def changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{option: (saved, current)} for the options a resumed run sets differently from the saved
    (flat) configuration; options the saved one does not know are left out, and so are those about
    one invocation. A method's own options (in no section) always count."""
    def persists(key: str) -> bool:
        return key not in SECTION_OF or SECTIONS[SECTION_OF[key]].__dataclass_fields__[key].metadata["persist"]

    return {k: (saved[k], v) for k, v in current.items() if k in saved and saved[k] != v and persists(k)}
