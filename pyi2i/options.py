"""The command line of `python -m pyi2i.train`: parsed once, here, into a `TrainConfig`.

Options are generated from the configuration's fields (pyi2i.config), so they keep the original
release's names, and their help and checks live in one place. Below this module nothing sees
argparse. Precedence, lowest first: the defaults, the run's saved config.toml (with
--continue_train), the file given with --config, then the options on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from typing import Any

from pyi2i.config import (
    SECTIONS, ConfigError, DataConfig, DisplayConfig, EvalConfig, ModelConfig, RunConfig, Section, SpeedConfig,
    TestConfig, TestOptions, TrainConfig, TranslateConfig, _base_type, merge, read_toml,
)
from pyi2i.registry import METHODS

CONFIG_FILE = "config.toml"
# Read from a resumed run's saved configuration, except these: they are about one invocation
# (a run stopped at --max_steps 20 must not stop again at once when resumed).
NOT_INHERITED = ("continue_train", "max_steps", "profile")


def add_fields(parser: argparse._ActionsContainer, cls: type[Section], section: str,
               only: typing.Collection[str] | None = None, added: set[str] | None = None) -> None:
    """One option per field of `cls` (or of the fields in `only`), stored as SECTION.FIELD and only
    when given, so that what was not given falls through to the file and the defaults. Fields
    named in `added` are left out (another method's option of the same name), and added to it."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or (added is not None and f.name in added):
            continue
        if added is not None:
            added.add(f.name)
        meta, kind = f.metadata, _base_type(hints[f.name])
        cli = dict(meta["cli"])
        flags = cli.pop("flags", (f"--{f.name}",))
        negative = cli.pop("negative", None)
        help = meta["help"] if f.default in (None, False) else f"{meta['help']} (default {f.default})"
        dest = f"{section}.{f.name}"
        if kind is bool:
            parser.add_argument(*flags, dest=dest, action="store_true", default=argparse.SUPPRESS, help=help)
            if negative:
                parser.add_argument(negative, dest=dest, action="store_false", default=argparse.SUPPRESS,
                                    help=f"the opposite of {flags[0]}")
            continue
        convert = _float if kind is float else kind
        choices = meta["choices"]
        if choices is None:
            cli.setdefault("metavar", f.name.upper())
        if callable(choices):  # names plug-ins add, and other spellings: checked with the configuration
            cli.setdefault("metavar", "{" + ",".join(choices()) + "}")
            choices = None
        parser.add_argument(*flags, dest=dest, type=convert, choices=choices, default=argparse.SUPPRESS,
                            help=help, **cli)


def _float(text: str) -> float:
    # The original release's --max_dataset_size default reads float("inf"); it is spelled both ways.
    return float("inf") if text in ("inf", "float('inf')", 'float("inf")') else float(text)


def given_values(namespace: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """{section: {option: value}} of the options given on the command line."""
    given: dict[str, dict[str, Any]] = {}
    for dest, value in vars(namespace).items():
        if "." in dest:
            section, name = dest.split(".", 1)
            given.setdefault(section, {})[name] = value
    return given


def training_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: a shortened or misspelled option is an error, never another option.
    p = argparse.ArgumentParser(prog="python -m pyi2i.train", description="Train pix2pix or CycleGAN.",
                                allow_abbrev=False)
    p.add_argument("--config", metavar="FILE",
                   help="a TOML file of options ([model], [data], ... tables, as in a run's config.toml); options "
                        "given on the command line override it")
    p.add_argument("--gpu_ids", help="original-release spelling of --device: '-1' for the CPU, '0' for cuda:0")
    p.add_argument("--plugin", metavar="MODULE", action="append", default=[],
                   help="import MODULE first, so that the methods and datasets it registers can be named")
    for section, cls in SECTIONS.items():
        add_fields(p.add_argument_group(section, cls.__doc__), cls, section)
    added: set[str] = set()  # the [method] options of every method that has some
    for name in METHODS.names():
        options = METHODS.get(name).Options
        if options is not None:
            add_fields(p.add_argument_group(f"--model {name}", options.__doc__), options, "method", added=added)
    return p


def import_plugins(argv: list[str] | None) -> None:
    """Imports the modules named by --plugin before the parser is built, so that what they
    register is among the choices."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for module in known.plugin:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"--plugin {module}: cannot import it ({e}); it must be importable from here "
                              "(on PYTHONPATH or installed)") from e


def device_of_gpu_ids(gpu_ids: str) -> str:
    ids = [i.strip() for i in gpu_ids.split(",") if i.strip()]
    if not ids or ids[0] == "-1":
        return "cpu"
    if len(ids) > 1:
        raise ConfigError(f"--gpu_ids {gpu_ids}: one process trains on one GPU here; to train on {len(ids)} GPUs, "
                          f"start one process per GPU: torchrun --nproc_per_node={len(ids)} -m pyi2i.train ... "
                          "(with CUDA_VISIBLE_DEVICES to choose them)")
    return f"cuda:{ids[0]}"


def parse(make_parser, argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace,
                                                         dict[str, dict[str, Any]]]:
    """(parser, namespace, {section: {option: value}} given) of `argv`, with the --plugin modules
    imported first and --gpu_ids turned into --device; exit 2 with the reason on bad usage."""
    try:
        import_plugins(argv)
    except ConfigError as e:
        make_parser().error(str(e))
    parser = make_parser()
    namespace = parser.parse_args(argv)
    given = given_values(namespace)
    if namespace.gpu_ids is not None:
        try:
            given.setdefault("run", {})["device"] = device_of_gpu_ids(namespace.gpu_ids)
        except ConfigError as e:
            parser.error(str(e))
    return parser, namespace, given


def parse_training(argv: list[str] | None = None) -> TrainConfig:
    """The configuration the command line asks for, checked (exit 2 with the fix if it cannot work)
    and not yet resolved: `resolve()` fills in the per-method and demo defaults."""
    parser, namespace, given = parse(training_parser, argv)
    try:
        layers = [read_toml(namespace.config)] if namespace.config else []
        source = namespace.config or "the command line"
        values = merge(*layers, given)
        if values.get("run", {}).get("continue_train"):
            # Only to find the run folder: the method, and so which options are its own, may be the saved one.
            located = TrainConfig.from_dict({k: v for k, v in values.items() if k != "method"}, source)
            saved = located.resolve().run_dir / CONFIG_FILE
            if saved.is_file():
                base = {section: {k: v for k, v in options.items() if k not in NOT_INHERITED}
                        for section, options in read_toml(saved).items()}
                values, source = merge(base, values), f"{saved} with {source}"
        config = TrainConfig.from_dict(values, source)
        config.resolve()  # checks the combination now, so that a bad one is a usage error
    except ConfigError as e:
        parser.error(str(e))
    return config


# The base options the original test.py takes from the run section; the rest are about training.
TEST_RUN_OPTIONS = ("name", "checkpoints_dir", "device", "seed", "epoch", "load_iter", "verbose", "suffix")


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.test", allow_abbrev=False,
                                description="Run trained generators on a test split, as the original test.py.")
    p.add_argument("--gpu_ids", help="original-release spelling of --device: '-1' for the CPU, '0' for cuda:0")
    p.add_argument("--plugin", metavar="MODULE", action="append", default=[],
                   help="import MODULE first, so that the methods and datasets it registers can be named")
    add_fields(p.add_argument_group("test", TestOptions.__doc__), TestOptions, "test")
    model_fields = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "arch"]
    add_fields(p.add_argument_group("model"), ModelConfig, "model", only=model_fields)
    add_fields(p.add_argument_group("data"), DataConfig, "data")
    add_fields(p.add_argument_group("run"), RunConfig, "run", only=TEST_RUN_OPTIONS)
    add_fields(p.add_argument_group("speed"), SpeedConfig, "speed", only=("impl", "amp", "channels_last"))
    add_fields(p.add_argument_group("display", DisplayConfig.__doc__), DisplayConfig, "display")
    return p


def parse_test(argv: list[str] | None = None) -> TestConfig:
    """The configuration of python -m pyi2i.test: the options given, on the defaults of the original
    test.py (split test; load_size = crop_size, so images are not cropped)."""
    parser, _, given = parse(test_parser, argv)
    try:
        data = given.get("data", {})
        data.setdefault("phase", "test")
        data.setdefault("crop_size", 256)
        data.setdefault("load_size", data["crop_size"])
        sections = {name: cls(**given.get(name, {})) for name, cls in
                    (("test", TestOptions), ("model", ModelConfig), ("run", RunConfig), ("speed", SpeedConfig),
                     ("display", DisplayConfig))}
        config = TestConfig(data=DataConfig(**data), **sections)
        if config.data.dataroot is None:
            raise ConfigError("--dataroot is required: the folder of the test images")
    except ConfigError as e:
        parser.error(str(e))
    return config


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """The metrics options that python -m pyi2i.evaluate shares with training."""
    add_fields(p.add_argument_group("metrics"), EvalConfig, "eval",
               only=("inception_weights", "feature_extractor", "no_lpips"))


def evaluation_values(namespace: argparse.Namespace) -> EvalConfig:
    return EvalConfig(**given_values(namespace).get("eval", {}))


def add_translate_options(p: argparse.ArgumentParser) -> None:
    add_fields(p, TranslateConfig, "translate")


def parse_translate(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> TranslateConfig:
    try:
        return TranslateConfig(**given_values(parser.parse_args(argv)).get("translate", {}))
    except ConfigError as e:
        parser.error(str(e))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
