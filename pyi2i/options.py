"""The command line of `python -m pyi2i.train`: parsed once, here, into a `TrainConfig`.

Options are generated from the configuration's fields (pyi2i.config), so they keep the original
release's names, and their help and checks live in one place. Below this module nothing sees
argparse. Precedence, lowest first: the defaults, the run's saved config.toml (with
--continue_train), the file given with --config, then the options on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from pyi2i.config import (
    SECTIONS, ConfigError, EvalConfig, Section, TrainConfig, TranslateConfig, _base_type, merge, read_toml,
)

CONFIG_FILE = "config.toml"
# Read from a resumed run's saved configuration, except these: they are about one invocation
# (a run stopped at --max_steps 20 must not stop again at once when resumed).
NOT_INHERITED = ("continue_train", "max_steps", "profile")


def add_fields(parser: argparse._ActionsContainer, cls: type[Section], section: str,
               only: typing.Collection[str] | None = None) -> None:
    """One option per field of `cls` (or of the fields in `only`), stored as SECTION.FIELD and only
    when given, so that what was not given falls through to the file and the defaults."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
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
        parser.add_argument(*flags, dest=dest, type=convert, choices=meta["choices"], default=argparse.SUPPRESS,
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
    for section, cls in SECTIONS.items():
        add_fields(p.add_argument_group(section, cls.__doc__), cls, section)
    return p


def device_of_gpu_ids(gpu_ids: str) -> str:
    ids = [i.strip() for i in gpu_ids.split(",") if i.strip()]
    if not ids or ids[0] == "-1":
        return "cpu"
    if len(ids) > 1:
        raise ConfigError(f"--gpu_ids {gpu_ids}: one process trains on one GPU here; to train on {len(ids)} GPUs, "
                          f"start one process per GPU: torchrun --nproc_per_node={len(ids)} -m pyi2i.train ... "
                          "(with CUDA_VISIBLE_DEVICES to choose them)")
    return f"cuda:{ids[0]}"


def parse_training(argv: list[str] | None = None) -> TrainConfig:
    """The configuration the command line asks for, checked (exit 2 with the fix if it cannot work)
    and not yet resolved: `resolve()` fills in the per-method and demo defaults."""
    parser = training_parser()
    namespace = parser.parse_args(argv)
    try:
        given = given_values(namespace)
        if namespace.gpu_ids is not None:
            given.setdefault("run", {})["device"] = device_of_gpu_ids(namespace.gpu_ids)
        layers = [read_toml(namespace.config)] if namespace.config else []
        source = namespace.config or "the command line"
        config = TrainConfig.from_dict(merge(*layers, given), source)
        if config.run.continue_train:
            saved = config.resolve().run_dir / CONFIG_FILE
            if saved.is_file():
                base = {section: {k: v for k, v in values.items() if k not in NOT_INHERITED}
                        for section, values in read_toml(saved).items()}
                config = TrainConfig.from_dict(merge(base, *layers, given), f"{saved} with {source}")
        config.resolve()  # checks the combination now, so that a bad one is a usage error
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
