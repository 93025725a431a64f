"""python -m pyi2i.test --dataroot DIR --name NAME --model {cycle_gan,pix2pix,test,colorization} [options]

What the original release's test.py does, with its options and defaults: loads the trained
generators `EPOCH_net_G*.pth` from CHECKPOINTS_DIR/NAME (written by pyi2i runs beside their
checkpoints, and by the original release; or, where they are missing, the pyi2i checkpoint), runs them on the first --num_test (50) images of the
test split, and writes RESULTS_DIR/NAME/PHASE_EPOCH/images/STEM_LABEL.png with an index.html:

    cycle_gan      real_A fake_B rec_A real_B fake_A rec_B
    pix2pix        real_A fake_B real_B
    colorization   real_A real_B_rgb fake_B_rgb
    test           real fake    (one generator, --dataset_mode single, weights EPOCH_net_G{--model_suffix}.pth)

As in the original, the networks stay in train mode unless --eval is given (pix2pix's dropout and
batch norm then behave as during training), images are resized to --crop_size (--load_size
defaults to it), never flipped, and taken in order. The architecture is read from the weights; an
option that contradicts them (--netG, --ngf, --norm, ...) is an error.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from pyi2i import fileio
from pyi2i.checkpoints import MissingCheckpoint, training_file
from pyi2i.cli import console_script
from pyi2i.config import TestConfig, suffixed
from pyi2i.data import create_dataset
from pyi2i.engine.trainer import resolve_device
from pyi2i.options import parse_test
from pyi2i.registry import METHODS
from pyi2i.reports import to_uint8
from pyi2i.translator import load_generator

log = logging.getLogger("pyi2i")


def _single_visuals(G: dict, sample: dict) -> dict:
    return dict(real=sample["A"], fake=G["G"](sample["A"]))


def plan(config: TestConfig) -> tuple[dict[str, str], object, str]:
    """({generator name: weights file}, the visuals function, the dataset layout) of `config.test.model`."""
    run, model = config.run, config.test.model
    label = run.checkpoint_label
    folder = Path(run.checkpoints_dir) / test_name(config)
    if model == "test":
        files = {"G": folder / f"{label}_net_G{config.test.model_suffix}.pth"}
        return files, _single_visuals, config.data.dataset_mode or "single"
    method = METHODS.get(model)
    files = {name: folder / f"{label}_net_{name}.pth" for name in method.generators}
    return files, method.test_visuals, config.data.dataset_mode or method.defaults.get("dataset_mode", "single")


def test_name(config: TestConfig) -> str:
    """--name with --suffix applied, as the original does."""
    run = config.run
    if run.name is None:
        return f"{Path(config.data.dataroot).resolve().name}_{config.test.model}"
    if not run.suffix:
        return run.name
    values = {f.name: getattr(s, f.name) for s in (config.model, config.data, config.run, config.test)
              for f in dataclasses.fields(s)}
    return suffixed(run.name, run.suffix, values)


def load_generators(config: TestConfig, files: dict[str, Path], device: torch.device
                    ) -> tuple[dict[str, torch.nn.Module], dict]:
    """The generators, their architecture read from the weights and checked against what was given,
    and the options of the first (its channels are the data's)."""
    m = config.model
    # A pyi2i run folder without the weight files (deleted by hand) still has its training checkpoint.
    state = Path(config.run.checkpoints_dir) / test_name(config) / training_file(config.run.checkpoint_label)
    missing = [p for p in files.values() if not p.is_file()]
    if missing and state.is_file() and config.test.model != "test":  # --model test: one generator's own file
        files, missing = {name: state for name in files}, []
    if missing:
        found = sorted(p.name for p in missing[0].parent.glob("*_net_G*.pth")) if missing[0].parent.is_dir() else []
        raise MissingCheckpoint(f"{missing[0]} not found: --name, --checkpoints_dir and --epoch name the weights "
                                f"CHECKPOINTS_DIR/NAME/EPOCH_net_G*.pth"
                                + (f"; that folder has {', '.join(found)}" if found else ""))
    nets, first = {}, None
    for name, path in files.items():
        # Inputs and outputs swap for the B -> A generator; the other options are shared.
        nc = (m.output_nc, m.input_nc) if name == "G_B" else (m.input_nc, m.output_nc)
        given = dict(netG=m.netG, ngf=m.ngf, norm=m.norm, input_nc=nc[0], output_nc=nc[1],
                     use_dropout=None if m.no_dropout is None else not m.no_dropout)
        G, options = load_generator(path, name, impl=config.speed.impl, **given)
        first = first or options
        G = G.to(device)
        G.train(not config.test.eval)
        if config.run.verbose:
            log.info("%s from %s:\n%s", name, path, G)
        nets[name] = G
    return nets, first


def to_image(x: torch.Tensor, aspect_ratio: float) -> Image.Image:
    """A (C, H, W) image in [-1, 1] as PIL, resized to `aspect_ratio` as the original's save_image."""
    array = to_uint8(x[None].float().cpu())[0]
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    w, h = image.size
    if aspect_ratio > 1.0:
        image = image.resize((int(w * aspect_ratio), h), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        image = image.resize((w, int(h / aspect_ratio)), Image.BICUBIC)
    return image


def write_page(folder: Path, title: str, rows: list[tuple[str, list[tuple[str, str]]]], width: int) -> None:
    """index.html: per tested image, its name and each written image with its label."""
    body = []
    for name, images in rows:
        cells = "".join(f"<td><a href='{html.escape(src)}'><img src='{html.escape(src)}' style='width:{width}px'>"
                        f"</a><p>{html.escape(label)}</p></td>" for label, src in images)
        body.append(f"<h3>{html.escape(name)}</h3>\n<table><tr>{cells}</tr></table>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")
    fileio.write_text(folder / "index.html", page)


@torch.no_grad()
def test(config: TestConfig) -> Path:
    """Runs the trained generators on the test split; returns the results folder."""
    device = resolve_device(config.run.device)
    files, visuals_of, layout = plan(config)
    G, options = load_generators(config, files, device)
    data = dataclasses.replace(config.data, dataset_mode=layout, serial_batches=True, no_flip=True)
    dataset = create_dataset(data, input_nc=options["input_nc"], output_nc=options["output_nc"],
                             seed=config.run.seed)
    name, run = test_name(config), config.run
    folder = Path(config.test.results_dir) / name / f"{data.phase}_{run.epoch}"
    if run.load_iter > 0:
        folder = folder.with_name(f"{folder.name}_iter{run.load_iter}")
    count = min(len(dataset), config.test.num_test)
    rows = []
    # Batch 1, no workers and the data in order: the original test.py's loader.
    for i, sample in enumerate(DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)):
        if i >= count:
            break
        tensors = {k: v.to(device) for k, v in sample.items() if torch.is_tensor(v)}
        stem = os.path.splitext(os.path.basename(sample["A_paths"][0]))[0]
        images = []
        for label, image in visuals_of(G, tensors).items():
            path = folder / "images" / f"{stem}_{label}.png"
            with fileio.atomic_write(path, "wb") as f:
                to_image(image[0], config.test.aspect_ratio).save(f, format="PNG")
            images.append((label, f"images/{path.name}"))
        rows.append((stem, images))
        if i % 5 == 0:
            log.info("processing (%04d)-th image... %s", i, sample["A_paths"][0])
    write_page(folder, f"Experiment = {name}, Phase = {data.phase}, Epoch = {run.epoch}", rows,
               config.display.display_winsize)
    left = len(dataset) - count
    if left > 0:
        log.warning("tested the first %d images (--num_test %d): %d more of %s were left out; pass --num_test %d to "
                    "test them all", count, config.test.num_test, left, data.dataroot, len(dataset))
    log.info("wrote %d results to %s", len(rows), folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    test(parse_test(argv))


cli = console_script(main)

if __name__ == "__main__":
    cli()
