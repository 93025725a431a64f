"""python -m pyi2i.train --arch {cyclegan,pix2pix} [original-release options]
torchrun --nproc_per_node=N -m pyi2i.train ...   (data-parallel over N processes)

With no --dataroot, trains on the built-in demo data (generated on first use in ./datasets/demo).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pyi2i.cli import run_cli
from pyi2i.data import ensure_demo
from pyi2i.engine import distributed
from pyi2i.engine.trainer import resolve_device, train
from pyi2i.options import parse_training

log = logging.getLogger("pyi2i")

DEMO_ROOT = Path("datasets") / "demo"
DEMO_KINDS = {"cyclegan": ("unpaired", 64), "pix2pix": ("paired", 128)}


def main(argv: list[str] | None = None) -> None:
    opt = parse_training(argv)
    world, _ = distributed.setup(resolve_device(opt.device))
    try:
        if opt.demo:
            kind, size = DEMO_KINDS[opt.arch]
            with world.main_first():  # one process writes the demo data, the others then find it
                opt.dataroot = str(ensure_demo(DEMO_ROOT / kind, kind, size=size))
            log.info("no --dataroot: using the built-in %s demo data in %s, with demo defaults for %s", kind,
                     opt.dataroot, ", ".join(f"--{k} {getattr(opt, k)}" for k in opt.demo_defaults))
        if opt.name is None:
            opt.name = f"{opt.arch}_demo" if opt.demo else f"{Path(opt.dataroot).resolve().name}_{opt.arch}"
        train(opt)
    finally:
        distributed.teardown()


if __name__ == "__main__":
    sys.exit(run_cli(main))
