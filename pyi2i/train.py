"""python -m pyi2i.train --arch {cyclegan,pix2pix} [original-release options]

With no --dataroot, trains on the built-in demo data (generated on first use in ./datasets/demo).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pyi2i.cli import run_cli
from pyi2i.data import ensure_demo
from pyi2i.engine.trainer import train
from pyi2i.options import parse_training

log = logging.getLogger("pyi2i")

DEMO_ROOT = Path("datasets") / "demo"
DEMO_KINDS = {"cyclegan": ("unpaired", 64), "pix2pix": ("paired", 128)}


def main(argv: list[str] | None = None) -> None:
    opt = parse_training(argv)
    if opt.demo:
        kind, size = DEMO_KINDS[opt.arch]
        opt.dataroot = str(ensure_demo(DEMO_ROOT / kind, kind, size=size))
        log.info("no --dataroot: using the built-in %s demo data in %s, with demo defaults for %s", kind,
                 opt.dataroot, ", ".join(f"--{k} {getattr(opt, k)}" for k in opt.demo_defaults))
    if opt.name is None:
        opt.name = f"{opt.arch}_demo" if opt.demo else f"{Path(opt.dataroot).resolve().name}_{opt.arch}"
    train(opt)


if __name__ == "__main__":
    sys.exit(run_cli(main))
