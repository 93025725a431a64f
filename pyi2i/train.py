"""python -m pyi2i.train --arch {cyclegan,pix2pix} [original-release options] [--config run.toml]
torchrun --nproc_per_node=N -m pyi2i.train ...   (data-parallel over N processes)

With no --dataroot, trains on the built-in demo data (generated on first use in ./datasets/demo).
From Python: pyi2i.fit(pyi2i.TrainConfig.from_args([...])) does the same and returns the run folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyi2i.cli import console_script
from pyi2i.config import DEMO_ROOT, TrainConfig
from pyi2i.data import ensure_demo
from pyi2i.engine import distributed
from pyi2i.engine.trainer import resolve_device, train
from pyi2i.options import parse_training
from pyi2i.registry import METHODS

log = logging.getLogger("pyi2i")


def fit(config: TrainConfig) -> Path:
    """Trains as `config` says (its defaults resolved first) and returns the run folder."""
    world, _ = distributed.setup(resolve_device(config.run.device))
    try:
        demo_defaults = config.demo_defaults()
        config = config.resolve()
        method = METHODS.get(config.model.arch)
        kind, size = method.demo or (None, None)
        demo = DEMO_ROOT / str(kind)
        if kind is not None and Path(config.data.dataroot) == demo:
            with world.main_first():  # one process writes the demo data, the others then find it
                ensure_demo(demo, kind, size=size)
            if demo_defaults:
                log.info("no --dataroot: using the built-in %s demo data in %s, with demo defaults for %s", kind, demo,
                         ", ".join(f"--{k} {config.flat()[k]}" for k in demo_defaults))
        train(config)
    finally:
        distributed.teardown()
    return config.run_dir


def main(argv: list[str] | None = None) -> None:
    fit(parse_training(argv))


cli = console_script(main)

if __name__ == "__main__":
    cli()
