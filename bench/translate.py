"""Inference throughput: translate and the Translator API against an original-style test.py loop.

    python bench/translate.py            # resnet_9blocks (ngf 64) at 256 and 1024 px
    python bench/translate.py --quick    # small counts and a narrow network (ngf 8): a CI-sized check

Every row translates the same PNG files written at the start: the original-style loop (the
original release's network, eager fp32, one image at a time: PIL decode, forward, 8-bit conversion,
PNG encode of the output and the input copy, as its test.py does), `python -m pyi2i.translate`'s
pipeline (threads decoding, batches, a pool encoding and writing), and the Translator on in-memory
PIL images in batches (no file I/O). On a GPU translate and the Translator also run with bf16
autocast, and with bf16 and CUDA graphs: the configuration of the goal, 3,000 images/s at 256 px on
one H100/H200 (the compute floor is about 8,000). Reported: images/s, and the ratio to the
original-style loop at the same size. Prints a markdown table last and appends JSON rows to
bench/results/translate.jsonl (by default on a GPU only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import pyi2i.testing.original as orig  # noqa: E402
from pyi2i.models.original_format import build_generator, from_original  # noqa: E402
from pyi2i.reports import to_uint8  # noqa: E402
from pyi2i.translate import translate_folder  # noqa: E402
from pyi2i.translator import Translator  # noqa: E402


GOAL_IMAGES_PER_S, GOAL_SIZE, GOAL_CONFIG = 3000, 256, "bf16 + CUDA graphs"


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="ngf 8 and a few images per size (for CI on a CPU)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--ngf", type=int, help="generator width (default 64; 8 with --quick)")
    p.add_argument("--images", type=int, help="images per size (default: 64 on a GPU, 8 on a CPU, 2 with --quick)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=None,
                   help="append rows to bench/results/translate.jsonl (default: on a GPU only)")
    args = p.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.ngf = args.ngf or (8 if args.quick else 64)
    args.images = args.images or (2 if args.quick else 64 if args.device == "cuda" else 8)
    args.save = args.device == "cuda" if args.save is None else args.save
    return args


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def original_loop(weights: dict, files: list[Path], out: Path, ngf: int, device: str) -> None:
    """The original release's test.py for one folder: batch 1, eager fp32, PIL in and out."""
    net = orig.ResnetGenerator(3, 3, ngf, "instance", False, 9)
    net.load_state_dict(weights)
    net.to(device).eval()
    with torch.no_grad():
        for path in files:
            img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].div(255).sub(0.5).div(0.5).to(device)
            fake = net(x)
            Image.fromarray(to_uint8(fake)[0]).save(out / f"{path.stem}_fake.png")
            Image.fromarray(to_uint8(x)[0]).save(out / f"{path.stem}_real.png")


def main(argv=None) -> list[dict]:
    args = options(argv)
    env = _common.environment(args.device)
    options_ = dict(netG="resnet_9blocks", ngf=args.ngf, norm="instance", input_nc=3, output_nc=3, use_dropout=False)
    reference = orig.ResnetGenerator(3, 3, args.ngf, "instance", False, 9)
    weights = reference.state_dict()
    G = build_generator(options_)
    from_original(G, weights)
    configs = [("fp32", None, False)]
    if args.device == "cuda":
        configs += [("bf16", "bf16", False), (GOAL_CONFIG, "bf16", True)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            folder = tmp / f"in{size}"
            folder.mkdir()
            rng = np.random.default_rng(size)
            files = []
            for i in range(args.images):
                files.append(folder / f"{i:04d}.png")
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(files[-1])
            pil = [Image.open(f).convert("RGB") for f in files]

            def timed(name: str, run, warm) -> None:
                warm()  # first-call costs (allocator, cuDNN's algorithm search) stay out of the numbers
                _sync(args.device)
                start = time.perf_counter()
                run()
                _sync(args.device)
                seconds = time.perf_counter() - start
                rows.append(dict(bench="translate", configuration=name, size=size, images=args.images, ngf=args.ngf,
                                 seconds=seconds, images_per_s=args.images / seconds, **env))
                print(f"{size:5d} px  {name:28s} {args.images / seconds:9.2f} images/s", flush=True)

            out = tmp / f"orig{size}"
            out.mkdir()
            timed("original loop (fp32, batch 1)", lambda: original_loop(weights, files, out, args.ngf, args.device),
                  lambda: original_loop(weights, files[:1], out, args.ngf, args.device))
            for label, amp, graphs in configs:
                translator = Translator(G, options_, args.device, amp=amp, cuda_graphs=graphs)
                n = [0]

                def run_translate() -> None:
                    n[0] += 1
                    translate_folder(translator, folder, tmp / f"t{size}_{label}_{n[0]}", batch_size=args.batch_size,
                                     progress=False)

                timed(f"translate {label}", run_translate, lambda: translator(pil[:1]))
                timed(f"Translator API {label}", lambda: [translator(pil[i:i + args.batch_size])
                                                          for i in range(0, len(pil), args.batch_size)],
                      lambda: translator(pil[:1]))
    for row in rows:
        base = next(r for r in rows if r["size"] == row["size"] and r["configuration"].startswith("original"))
        row["ratio_to_original"] = row["images_per_s"] / base["images_per_s"]
    if args.save:
        _common.append_rows("translate", rows)
    print(f"\ntranslate, resnet_9blocks ngf {args.ngf}, on {env['device']} (torch {env['torch']}, commit "
          f"{env['commit']})\n")
    for r in rows:
        if r["size"] == GOAL_SIZE and r["configuration"] == f"translate {GOAL_CONFIG}":
            r["goal_images_per_s"] = GOAL_IMAGES_PER_S
    print(table(rows))
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table of the rows, with the goal's row marked met or not."""
    lines = ["| size | configuration | images | images/s | ratio to the original loop | goal |", "|---|---|---|---|---|---|"]
    for r in rows:
        goal = r.get("goal_images_per_s")
        verdict = "" if goal is None else f"{goal} images/s: {'met' if r['images_per_s'] >= goal else 'not met'}"
        lines.append(f"| {r['size']} | {r['configuration']} | {r['images']} | {r['images_per_s']:.2f} | "
                     f"{r['ratio_to_original']:.2f}x | {verdict} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
