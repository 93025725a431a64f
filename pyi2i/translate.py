"""python -m pyi2i.translate --checkpoint FILE --input DIR --output DIR

Translates every image under DIR with a generator from a pyi2i training checkpoint (`latest.pt`,
`epoch_NNN.pt`), from the original release (`latest_net_G.pth`, `latest_net_G_A.pth`, ...) or from a
safetensors export, writing OUTPUT/images/<folder under DIR>/STEM_fake.png beside STEM_real.png and
an index.html page of input/output pairs. Each PNG has the channels of its side of the network
(a one-channel generator writes grayscale), with 16 bits per value where the input had more than 8;
images of more than 4 channels, which PNG cannot hold, are written as .npy arrays. Outputs of an
earlier run are kept: the command stops before writing anything unless --overwrite is given.

Images are decoded by worker threads (DALI on a GPU), translated in batches of --batch_size (images
of one size share a batch), and encoded and written by a thread pool while the next batch runs.
Output names and contents do not depend on the batch size. --input may also be a video file
(translated frame by frame into the video --output names; see pyi2i.video).

As in the original release, pix2pix's test-time behaviour is the default: dropout stays on and
batch norm uses the statistics of each test image. `--eval` switches the network to eval mode.
"""

from __future__ import annotations

import argparse
import collections
import html
import logging
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pyi2i import fileio
from pyi2i.cli import console_script
from pyi2i.config import DataConfig, TranslateConfig
from pyi2i.data import SingleDataset
from pyi2i.data.dali import DaliCannotDecode, DaliLoader, DaliUnavailable, resolve_loader
from pyi2i.data.decode import load_image, stored_bits, write_png16
from pyi2i.data.transforms import to_network
from pyi2i.errors import UserError
from pyi2i.options import add_translate_options, parse_translate
from pyi2i.translator import Translator

log = logging.getLogger("pyi2i")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.translate", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_translate_options(p)
    return p


def output_stem(path: str, root: str | os.PathLike) -> str:
    """`images/<folder of path under root>/<stem>`: inputs with one stem in different folders keep
    apart, and a name never leaves the output folder."""
    rel = Path(os.path.relpath(path, root))
    if rel.parts and rel.parts[0] == os.pardir:  # a link out of the tree: only its own name
        rel = Path(rel.name)
    return (Path("images") / rel.parent / rel.stem).as_posix()


def output_ends(options: dict) -> tuple[str, str]:
    """The ends of the names of an input's (real, fake) outputs: PNG files hold 1 to 4 channels, and
    images of more are written as .npy arrays (float32 (H, W, C) in [0, 1], as the data reads them)."""
    return tuple(f"_{kind}{'.png' if options[nc] <= 4 else '.npy'}"
                 for kind, nc in (("real", "input_nc"), ("fake", "output_nc")))


def _check_outputs(output: Path, stems: list[str], ends: tuple[str, str], overwrite: bool) -> None:
    """No two inputs write one file, and no earlier run's output is replaced unless asked."""
    seen: dict[str, int] = collections.Counter(stems)
    clash = next((s for s, n in seen.items() if n > 1), None)
    if clash:  # a.png and a.jpg in one folder
        raise UserError(f"{seen[clash]} inputs would all be written as {clash}{ends[1]}: give the images "
                        "in one folder distinct names (they differ only in their extension)")
    if overwrite:
        return
    existing = [output / f"{s}{end}" for s in stems for end in ends[::-1] if (output / f"{s}{end}").exists()]
    if existing:
        raise UserError(f"{len(existing)} outputs of an earlier run are in {output} (first: {existing[0]}); "
                        "pass --overwrite to replace them, or choose another --output")


def write_index(output: Path, rows: list[tuple[str, str, str]]) -> None:
    """index.html: one row per image, input beside output (a link to arrays a browser cannot show)."""
    def cell(src: str) -> str:
        src = html.escape(src)
        return f"<td><img src='{src}'></td>" if src.endswith(".png") else f"<td><a href='{src}'>{src}</a></td>"

    cells = "\n".join(f"<tr><td>{html.escape(name)}</td>{cell(a)}{cell(b)}</tr>" for name, a, b in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pyi2i results</title>"
            f"<style>img{{max-width:256px}} td{{padding:4px}}</style></head><body>"
            f"<table><tr><th>image</th><th>input</th><th>output</th></tr>\n{cells}\n</table></body></html>\n")
    fileio.write_text(output / "index.html", page)


def write_output(array: np.ndarray, path: Path) -> None:
    """(H, W, C) uint8 or uint16 as a PNG of C channels (1 to 4), or float32 as a .npy file (the
    suffix of `path` says which), atomically."""
    with fileio.atomic_write(path, "wb") as f:
        if path.suffix == ".npy":
            np.save(f, array, allow_pickle=False)
        elif array.dtype == np.uint16:
            write_png16(array, f)
        else:
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(f, format="PNG")


def to_unit(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) float32 in [0, 1]."""
    return ((images.detach().float().cpu().clamp(-1, 1).permute(0, 2, 3, 1).numpy() + 1) / 2).astype(np.float32)


def to_uint16(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint16, rounded to the nearest of 65536 levels."""
    return np.rint(to_unit(images) * 65535).astype(np.uint16)


def ordered_map(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map(fn, items) in order, with at most `window` items in flight (bounded memory)."""
    pending: collections.deque[Future] = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _batches(dataset: SingleDataset, translator: Translator, loader: str, batch_size: int,
             pool: ThreadPoolExecutor) -> Iterator[tuple[list[str], list[torch.Tensor]]]:
    """(paths, (C, H, W) images) in file order, `batch_size` at a time, decoded in parallel."""
    if resolve_loader(loader, translator.device) == "dali":
        # DALI batches are one tensor: images of differing sizes ('none') go one at a time
        same_size = dataset.data.preprocess != "none"
        try:
            dali = DaliLoader(dataset, batch_size=batch_size if same_size else 1, shuffle=False, seed=0,
                              device=translator.device, exact_size=not same_size)
        except DaliCannotDecode as e:
            if loader == "dali":
                raise DaliUnavailable(f"--loader dali: {e}; use --loader torch") from e
            log.warning("%s: reading with the torch loader", e)
            dali = None
        if dali is not None:
            for batch in dali.epoch(0):
                yield list(batch["A_paths"]), list(batch["A"])
            return
    if dataset.data.preprocess == "none":  # each image exactly as stored: the Translator pads and crops back
        def decode(index: int) -> dict:
            path = dataset.paths[index]
            return {"A": to_network(load_image(path), dataset.input_nc, path=path), "A_paths": path}
    else:
        decode = dataset.__getitem__
    samples = ordered_map(pool, decode, range(len(dataset)), window=4 * batch_size)
    while chunk := [s for _, s in zip(range(batch_size), samples)]:
        yield [s["A_paths"] for s in chunk], [s["A"] for s in chunk]


def translate_folder(translator: Translator, input: str | os.PathLike, output: str | os.PathLike, *,
                     batch_size: int = 8, overwrite: bool = False, progress: bool = True, preprocess: str = "none",
                     load_size: int = 256, crop_size: int = 256, num_test: int | None = None, loader: str = "torch",
                     workers: int | None = None) -> Path:
    """Every image under `input` to OUTPUT/images/<relative folder>/STEM_{fake,real}.png and an index.html
    (.npy for images of more than 4 channels; see `output_ends`)."""
    options = translator.options
    data = DataConfig(dataroot=str(input), phase="test", dataset_mode="single", preprocess=preprocess,
                      load_size=load_size, crop_size=crop_size, no_flip=True, max_dataset_size=num_test or math.inf,
                      serial_batches=True)
    dataset = SingleDataset(data, input_nc=options["input_nc"], output_nc=options["output_nc"])
    output = Path(output)
    stems = [output_stem(p, input) for p in dataset.paths]
    ends = output_ends(options)
    _check_outputs(output, stems, ends, overwrite)
    stem_of = dict(zip(dataset.paths, stems))
    # Outputs keep the precision of their input: 16-bit PNGs from inputs of more than 8 bits.
    deep = {p for p in dataset.paths if stored_bits(p) > 8}

    def stored_array(image: torch.Tensor, end: str, sixteen_bit: bool) -> np.ndarray:
        """(H, W, C) of one (1, C, H, W) image, as `write_output` stores it in a file ending in `end`."""
        if end.endswith(".npy"):
            return to_unit(image)[0]
        return (to_uint16(image) if sixteen_bit else translator.to_uint8(image))[0]

    workers = workers or min(8, os.cpu_count() or 1)
    writes: collections.deque[Future] = collections.deque()
    with ThreadPoolExecutor(workers) as decode, ThreadPoolExecutor(workers) as encode, \
            tqdm(total=len(dataset), unit="img", disable=not progress, desc="translate") as bar:
        for paths, images in _batches(dataset, translator, loader, batch_size, decode):
            by_size: dict[tuple, list[int]] = collections.defaultdict(list)
            for i, image in enumerate(images):
                by_size[tuple(image.shape)].append(i)
            for indices in by_size.values():
                real = torch.stack([images[i] for i in indices])
                fake, real = translator.translate_tensor(real).cpu(), real.cpu()
                for k, i in enumerate(indices):
                    stem = stem_of[paths[i]]
                    for batch, end in ((fake, ends[1]), (real, ends[0])):
                        array = stored_array(batch[k:k + 1], end, paths[i] in deep)
                        writes.append(encode.submit(write_output, array, output / f"{stem}{end}"))
            while len(writes) > 4 * batch_size * 2:  # bounded: the encoder keeps at most a few batches
                writes.popleft().result()
            bar.update(len(paths))
        for w in writes:
            w.result()
    rows = [(Path(p).name, f"{stem_of[p]}{ends[0]}", f"{stem_of[p]}{ends[1]}") for p in dataset.paths]
    write_index(output, rows)
    log.info("translated %d images with %s into %s", len(rows), options["netG"], output)
    return output


def translator_from_options(opt: TranslateConfig) -> Translator:
    given = {k: getattr(opt, k) for k in ("netG", "ngf", "norm", "input_nc", "output_nc")}
    given["use_dropout"] = False if opt.no_dropout else None
    return Translator.from_checkpoint(opt.checkpoint, opt.device, None if opt.amp == "none" else opt.amp, net=opt.net,
                                      direction=opt.direction, eval=opt.eval, tile=opt.tile,
                                      tile_overlap=opt.tile_overlap, impl=opt.impl, cuda_graphs=opt.cuda_graphs,
                                      **given)


def translate(opt: TranslateConfig) -> Path:
    translator = translator_from_options(opt)
    from pyi2i.video import is_video

    if is_video(opt.input):
        from pyi2i.video import translate_video

        return translate_video(translator, opt.input, opt.output, batch_size=opt.batch_size,
                               overwrite=opt.overwrite, progress=not opt.no_progress, loader=opt.loader)
    return translate_folder(translator, opt.input, opt.output, batch_size=opt.batch_size, overwrite=opt.overwrite,
                            progress=not opt.no_progress, preprocess=opt.preprocess, load_size=opt.load_size,
                            crop_size=opt.crop_size, num_test=opt.num_test, loader=opt.loader, workers=opt.workers)


def main(argv: list[str] | None = None) -> None:
    translate(parse_translate(parser(), argv))


cli = console_script(main)

if __name__ == "__main__":
    cli()
