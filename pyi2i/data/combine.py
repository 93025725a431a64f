"""Pairing two folders of images into the side-by-side A|B images that the aligned (pix2pix) loader reads.

The original release's `datasets/combine_A_and_B.py`, with these differences: splits, names and
pairs are taken in sorted order (the original takes them in directory order), `num_imgs` counts
written pairs (the original counts A's files, partners or not), and a pair whose halves differ in
size, an image that does not decode, or an A image without its B partner is reported instead of
being skipped in silence.
"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pyi2i.data.decode import read_npy
from pyi2i.data.images import _DECODE_ERRORS, DataError, is_image_file, to_rgb
from pyi2i.errors import UserError
from pyi2i.fileio import write_bytes

log = logging.getLogger("pyi2i")

# What cv2.imwrite, which the original writes with, uses when given no quality; PIL's own default is 75.
JPEG_QUALITY = 95
# Palette images may each carry their own palette, so their indices cannot share one canvas.
_PALETTE_MODES = ("P", "PA")
_EXAMPLES = 5


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    ab: Path


@dataclass
class SplitReport:
    split: str
    written: int
    without_partner: list[str]


def find_pairs(fold_A: Path, fold_B: Path, fold_AB: Path, split: str, use_AB: bool) -> tuple[list[Pair], list[str]]:
    """The pairs of one split in name order, and the names in fold_A/split with no partner in fold_B/split."""
    pairs, without_partner = [], []
    for entry in sorted(os.scandir(fold_A / split), key=lambda e: e.name):
        name_A = entry.name
        if not entry.is_file() or not is_image_file(name_A):
            continue
        if use_AB:
            # The original's naming convention: 0001_A.jpg pairs with 0001_B.jpg and becomes 0001.jpg.
            if "_A." not in name_A:
                continue
            name_B, name_AB = name_A.replace("_A.", "_B."), name_A.replace("_A.", ".")
        else:
            name_B = name_AB = name_A
        path_B = fold_B / split / name_B
        if path_B.is_file():
            pairs.append(Pair(Path(entry.path), path_B, fold_AB / split / name_AB))
        else:
            without_partner.append(name_A)
    return pairs, without_partner


def _combine_arrays(pair: Pair) -> str | None:
    """A pair of .npy arrays, read as the datasets read them ((H, W, C)), side by side as one .npy."""
    try:
        a, b = (read_npy(str(p)) for p in (pair.a, pair.b))
    except DataError as e:
        return str(e)
    if a.shape != b.shape or a.dtype != b.dtype:
        return (f"{pair.a} is {a.dtype} {a.shape} but {pair.b} is {b.dtype} {b.shape}: A and B of a pair must "
                "have one shape and type to stand side by side")
    encoded = io.BytesIO()
    np.save(encoded, np.concatenate([a, b], axis=1))
    write_bytes(pair.ab, encoded.getvalue())
    return None


def combine_pair(pair: Pair) -> str | None:
    """Writes pair.ab, A on the left and B on the right; returns what is wrong with the pair instead
    of raising, so that one bad pair in a pool of workers is reported with all the others."""
    if pair.a.suffix.lower() == ".npy":
        return _combine_arrays(pair)
    try:
        images = []
        for path in (pair.a, pair.b):
            with Image.open(path) as img:
                # cv2.imread, which the original reads with, turns photos upright by their EXIF orientation.
                images.append(ImageOps.exif_transpose(img))
    except _DECODE_ERRORS as e:
        return f"{path}: cannot read it ({e})"
    a, b = images
    if a.size != b.size:
        return (f"{pair.a} is {a.width}x{a.height} but {pair.b} is {b.width}x{b.height}: A and B of a pair must "
                "have the same height to stand side by side, and the same width, since the aligned loader cuts "
                "A|B at half its width")
    if a.mode != b.mode or a.mode in _PALETTE_MODES:
        # The original reads both as 8-bit colour; equal modes are kept so grayscale and 16-bit data stay so.
        a, b = to_rgb(a), to_rgb(b)
    ab = Image.new(a.mode, (a.width + b.width, a.height))
    ab.paste(a, (0, 0))
    ab.paste(b, (a.width, 0))
    image_format = Image.registered_extensions()[pair.ab.suffix.lower()]
    encoded = io.BytesIO()
    try:
        ab.save(encoded, format=image_format, **({"quality": JPEG_QUALITY} if image_format == "JPEG" else {}))
    except (OSError, ValueError) as e:
        return f"{pair.ab}: cannot store a {ab.mode} image as {image_format} ({e})"
    # Encoded before the write, so that only a failure to write (a full disk) stops every worker.
    write_bytes(pair.ab, encoded.getvalue())
    return None


def combine_A_and_B(fold_A: str | os.PathLike, fold_B: str | os.PathLike, fold_AB: str | os.PathLike, *,
                    num_imgs: int = 1_000_000, use_AB: bool = False, processes: int | None = None) -> list[SplitReport]:
    """For each split folder (train, val, test, ...) present in both fold_A and fold_B, writes
    fold_AB/SPLIT/NAME for at most `num_imgs` pairs. processes=1 works in this process; None uses
    one worker process per CPU core. Raises UserError listing the pairs that could not be combined,
    after writing all the others."""
    fold_A, fold_B, fold_AB = Path(fold_A), Path(fold_B), Path(fold_AB)
    for option, folder in (("--fold_A", fold_A), ("--fold_B", fold_B)):
        if not folder.is_dir():
            raise UserError(f"{option} {folder} is not a folder: give the folder that holds the split folders "
                            "(train/, val/, test/) of that domain")
    if fold_AB.resolve() in (fold_A.resolve(), fold_B.resolve()):
        raise UserError(f"--fold_AB {fold_AB} is an input folder: its images would be overwritten; "
                        "choose a new folder for the A|B images")
    if num_imgs < 0:
        raise UserError(f"--num_imgs {num_imgs} is negative: give the largest number of pairs to write per split")
    splits_A = {p.name for p in fold_A.iterdir() if p.is_dir()}
    splits_B = {p.name for p in fold_B.iterdir() if p.is_dir()}
    splits = sorted(splits_A & splits_B)
    if not splits:
        raise UserError(f"no split folder is in both {fold_A} and {fold_B} (fold_A holds "
                        f"{_listing(splits_A)}, fold_B holds {_listing(splits_B)}): each needs the same split "
                        "folders (train/, test/, ...), whose images are paired by file name")
    for split in sorted(splits_A - splits_B):
        log.warning("%s has no counterpart in %s: split %s left out", fold_A / split, fold_B, split)

    reports, problems = [], []
    executor = ProcessPoolExecutor(processes) if processes != 1 else None
    try:
        for split in splits:
            pairs, without_partner = find_pairs(fold_A, fold_B, fold_AB, split, use_AB)
            chosen = pairs[:num_imgs]
            log.info("split = %s, use %d/%d pairs", split, len(chosen), len(pairs))
            if without_partner:
                expected = "its _B partner" if use_AB else "a file of the same name"
                log.warning("%d images in %s have no partner (%s) in %s and are left out: %s", len(without_partner),
                            fold_A / split, expected, fold_B / split, _examples(without_partner))
            (fold_AB / split).mkdir(parents=True, exist_ok=True)
            results = executor.map(combine_pair, chosen, chunksize=16) if executor else map(combine_pair, chosen)
            failed = [problem for problem in results if problem is not None]
            problems += failed
            reports.append(SplitReport(split, len(chosen) - len(failed), without_partner))
    finally:
        if executor:
            executor.shutdown(cancel_futures=True)
    if problems:
        raise UserError(f"{len(problems)} pairs could not be combined and were not written (the others were): "
                        + "; ".join(problems[:_EXAMPLES]) + ("; ..." if len(problems) > _EXAMPLES else ""))
    return reports


def _listing(names: set[str]) -> str:
    return ", ".join(f"{n}/" for n in sorted(names)) or "no folders"


def _examples(names: list[str]) -> str:
    return ", ".join(names[:_EXAMPLES]) + (f" and {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else "")
