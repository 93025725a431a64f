"""Dataset tools from the command line.

    python -m pyi2i.datasets demo [--out DIR] [--kind paired|unpaired|both] [--size 64]
                                  [--n_train 200] [--n_test 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from pyi2i.data.demo import KINDS, make_demo

_USAGE = {
    "paired": "pix2pix:  --dataroot {path} --dataset_mode aligned",
    "unpaired": "CycleGAN: --dataroot {path} --dataset_mode unaligned",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyi2i.datasets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write the synthetic label-map <-> rendering demo data",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--out", default="./datasets/demo", help="each kind goes to OUT/<kind>/")
    demo.add_argument("--kind", choices=(*KINDS, "both"), default="both",
                      help="paired for pix2pix, unpaired for CycleGAN")
    demo.add_argument("--size", type=int, help="side of each square image, in pixels")
    demo.add_argument("--n_train", type=int, help="training images (per domain when unpaired)")
    demo.add_argument("--n_test", type=int, help="test images (per domain when unpaired)")
    demo.add_argument("--seed", type=int, help="other seeds give other scenes")
    demo.set_defaults(**{name: p.default for name, p in inspect.signature(make_demo).parameters.items()
                         if p.kind is p.KEYWORD_ONLY})
    args = parser.parse_args(argv)

    for kind in KINDS if args.kind == "both" else (args.kind,):
        root = make_demo(Path(args.out) / kind, kind, size=args.size, n_train=args.n_train,
                         n_test=args.n_test, seed=args.seed)
        print(f"wrote {kind} demo data to {root}  ({_USAGE[kind].format(path=root)})")


if __name__ == "__main__":
    main()
