"""Dataset tools from the command line.

    python -m pyi2i.datasets demo [--out DIR] [--kind paired|unpaired|both] [--size 64]
                                  [--n_train 200] [--n_test 20] [--seed 0]
    python -m pyi2i.datasets combine_A_and_B --fold_A A --fold_B B --fold_AB AB
                                  [--num_imgs 1000000] [--use_AB] [--no_multiprocessing]
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from pyi2i.cli import console_script
from pyi2i.data.combine import combine_A_and_B
from pyi2i.data.demo import KINDS, make_demo

_USAGE = {
    "paired": "pix2pix:  --dataroot {path} --dataset_mode aligned",
    "unpaired": "CycleGAN: --dataroot {path} --dataset_mode unaligned",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyi2i.datasets", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write the synthetic label-map <-> rendering demo data",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    demo.add_argument("--out", default="./datasets/demo", help="each kind goes to OUT/<kind>/")
    demo.add_argument("--kind", choices=(*KINDS, "both"), default="both",
                      help="paired for pix2pix, unpaired for CycleGAN")
    demo.add_argument("--size", type=int, help="side of each square image, in pixels")
    demo.add_argument("--n_train", type=int, help="training images (per domain when unpaired)")
    demo.add_argument("--n_test", type=int, help="test images (per domain when unpaired)")
    demo.add_argument("--seed", type=int, help="other seeds give other scenes")
    demo.set_defaults(**{name: p.default for name, p in inspect.signature(make_demo).parameters.items()
                         if p.kind is p.KEYWORD_ONLY})
    combine = commands.add_parser(
        "combine_A_and_B", help="pair images of two folders by name into A|B images for pix2pix",
        description="For each split folder (train/, val/, test/, ...) in both --fold_A and --fold_B, writes "
                    "FOLD_AB/SPLIT/NAME: FOLD_A/SPLIT/NAME on the left, FOLD_B/SPLIT/NAME on the right.",
        allow_abbrev=False)
    combine.add_argument("--fold_A", required=True, help="folder of domain A's split folders")
    combine.add_argument("--fold_B", required=True, help="folder of domain B's split folders")
    combine.add_argument("--fold_AB", required=True, help="output folder; gets the same split folders")
    combine.add_argument("--num_imgs", type=int, default=1_000_000,
                         help="at most this many pairs per split (default 1000000)")
    combine.add_argument("--use_AB", action="store_true",
                         help="pair NAME_A.EXT in fold_A with NAME_B.EXT in fold_B, writing NAME.EXT")
    combine.add_argument("--no_multiprocessing", action="store_true",
                         help="work in one process instead of one per CPU core")
    args = parser.parse_args(argv)

    if args.command == "combine_A_and_B":
        reports = combine_A_and_B(args.fold_A, args.fold_B, args.fold_AB, num_imgs=args.num_imgs,
                                  use_AB=args.use_AB, processes=1 if args.no_multiprocessing else None)
        total = sum(r.written for r in reports)
        print(f"wrote {total} A|B images to {args.fold_AB} ({', '.join(f'{r.split}: {r.written}' for r in reports)}; "
              f"pix2pix: --dataroot {args.fold_AB} --dataset_mode aligned)")
        return
    for kind in KINDS if args.kind == "both" else (args.kind,):
        root = make_demo(Path(args.out) / kind, kind, size=args.size, n_train=args.n_train,
                         n_test=args.n_test, seed=args.seed)
        print(f"wrote {kind} demo data to {root}  ({_USAGE[kind].format(path=root)})")


cli = console_script(main)

if __name__ == "__main__":
    cli()
