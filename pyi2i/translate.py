"""python -m pyi2i.translate --checkpoint FILE --input DIR --output DIR

Translates every image in DIR with a generator from a pyi2i training checkpoint (`latest.pt`,
`epoch_NNN.pt`) or from the original release (`latest_net_G.pth`, `latest_net_G_A.pth`, ...),
writing the outputs and an index.html page of input/output pairs.

As in the original release, pix2pix's test-time behaviour is the default: dropout stays on and
batch norm uses the statistics of the test batch. `--eval` switches the network to eval mode.
"""

from __future__ import annotations

import argparse
import html
import logging
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from pyi2i import checkpoints, fileio, reports
from pyi2i.cli import run_cli
from pyi2i.data import SingleDataset
from pyi2i.data.dali import LOADERS, DaliLoader, resolve_loader
from pyi2i.engine.trainer import resolve_device
from pyi2i.models import GENERATORS, NORMS, UnetGenerator, define_G
from pyi2i.models.original_format import IncompatibleCheckpoint, from_original, infer_generator_options
from pyi2i.options import PREPROCESS, positive_int
from pyi2i.ops import IMPLS

log = logging.getLogger("pyi2i")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.translate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="pyi2i checkpoint (.pt) or original *_net_G*.pth weights")
    p.add_argument("--input", required=True, help="folder of images to translate")
    p.add_argument("--output", required=True, help="folder for the results (created; existing files are kept)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB",
                   help="CycleGAN checkpoints: AtoB uses G_A, BtoA uses G_B")
    p.add_argument("--eval", action="store_true", help="eval mode: no dropout, batch norm running statistics")
    p.add_argument("--preprocess", choices=PREPROCESS, default="resize_and_crop",
                   help="as in training; 'none' keeps each image's size (padded to what the generator needs)")
    p.add_argument("--load_size", type=positive_int, default=256)
    p.add_argument("--crop_size", type=positive_int, default=256)
    p.add_argument("--num_test", type=positive_int, help="translate at most this many images")
    p.add_argument("--device", default="auto")
    p.add_argument("--loader", choices=LOADERS, default="auto",
                   help="torch: PIL; dali: NVIDIA DALI (decoding on the GPU); auto: dali on a GPU when installed")
    p.add_argument("--impl", choices=IMPLS, default="auto")
    g = p.add_argument_group("network (read from the checkpoint; give these only to override)")
    g.add_argument("--netG", choices=GENERATORS)
    g.add_argument("--ngf", type=positive_int)
    g.add_argument("--norm", choices=NORMS)
    g.add_argument("--input_nc", type=positive_int)
    g.add_argument("--output_nc", type=positive_int)
    g.add_argument("--no_dropout", action="store_true", default=None)
    return p


def load_generator(path: str, opt: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator in `path` (pyi2i checkpoint or original weights) and its options."""
    state = checkpoints.load(path)
    if state.get("format") == checkpoints.FORMAT:
        config = state["config"]
        name = "G" if config["arch"] == "pix2pix" else ("G_B" if opt.direction == "BtoA" else "G_A")
        weights = state["method"]["nets"][name]
        nc = (config["output_nc"], config["input_nc"]) if name == "G_B" else (config["input_nc"], config["output_nc"])
        found = dict(netG=config["netG"], ngf=config["ngf"], norm=config["norm"], input_nc=nc[0], output_nc=nc[1],
                     use_dropout=not config["no_dropout"])
    else:
        weights = None
        found = infer_generator_options(state)
    overrides = {k: getattr(opt, k) for k in ("netG", "ngf", "norm", "input_nc", "output_nc") if getattr(opt, k)}
    found.update(overrides)
    if opt.no_dropout:
        found["use_dropout"] = False
    elif found["use_dropout"] is None:  # U-Net files do not show it: pix2pix trains with dropout on
        found["use_dropout"] = True
    G = define_G(found["netG"], found["input_nc"], found["output_nc"], found["ngf"], found["norm"],
                 found["use_dropout"], impl=opt.impl, init=False)
    if weights is None:
        from_original(G, state, source=path)
    else:
        try:
            G.load_state_dict(weights)
        except RuntimeError as e:
            raise IncompatibleCheckpoint(f"{path}: the options given do not match the checkpoint's generator: {e}") from e
    return G.to(device), found


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pads H and W up to a multiple (replicating the border); returns the original size too."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return (F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x), (h, w)


def write_index(output: Path, rows: list[tuple[str, str, str]]) -> None:
    """index.html: one row per image, input beside output."""
    cells = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td><img src='{html.escape(a)}'></td><td><img src='{html.escape(b)}'></td></tr>"
        for name, a, b in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pyi2i results</title>"
            f"<style>img{{max-width:256px}} td{{padding:4px}}</style></head><body>"
            f"<table><tr><th>image</th><th>input</th><th>output</th></tr>\n{cells}\n</table></body></html>\n")
    fileio.write_text(output / "index.html", page)


def _images(dataset: SingleDataset, loader: str, device: torch.device):
    """Batches of one image, in file order, from the loader `--loader` names."""
    if resolve_loader(loader, device) == "dali":
        return DaliLoader(dataset, batch_size=1, shuffle=False, seed=0, device=device).epoch(0)
    return ({"A": s["A"][None], "A_paths": [s["A_paths"]]} for s in dataset)


@torch.no_grad()
def translate(opt: argparse.Namespace) -> Path:
    device = resolve_device(opt.device)
    G, found = load_generator(opt.checkpoint, opt, device)
    G.train(not opt.eval)
    multiple = 2 ** G.num_downs if isinstance(G, UnetGenerator) else 4
    data_opt = argparse.Namespace(
        dataroot=opt.input, phase="test", dataset_mode="single", direction="AtoB", preprocess=opt.preprocess,
        load_size=opt.load_size, crop_size=opt.crop_size, no_flip=True, input_nc=found["input_nc"],
        output_nc=found["output_nc"], max_dataset_size=opt.num_test or float("inf"), serial_batches=True,
        skip_bad_images=False, seed=0)
    dataset = SingleDataset(data_opt)
    output = Path(opt.output)
    (output / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for batch in _images(dataset, opt.loader, device):  # one at a time: with 'none', sizes differ
        x, size = pad_to_multiple(batch["A"].to(device), multiple)
        fake = G(x)[..., : size[0], : size[1]]
        path = batch["A_paths"][0]
        stem = Path(path).stem
        real_name, fake_name = f"images/{stem}_real.png", f"images/{stem}_fake.png"
        reports.save_image(batch["A"][0], output / real_name)
        reports.save_image(fake[0], output / fake_name)
        rows.append((Path(path).name, real_name, fake_name))
    write_index(output, rows)
    log.info("translated %d images with %s (%s) into %s", len(rows), found["netG"], opt.checkpoint, output)
    return output


def main(argv: list[str] | None = None) -> None:
    translate(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_cli(main))
