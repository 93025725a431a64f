"""Running a generator over a large image in overlapping tiles, blended without seams.

Each tile is translated on its own and the results are averaged with a smooth window: inside a
tile the weight is 1; across the `overlap` band it shares with a neighbour, it falls along a raised
cosine, and the two tiles' weights there sum to 1. Sides on the image border are not tapered.

Tiles start at multiples of the network's size multiple, so every tile sees the same sampling grid
as the whole image: away from the blend bands (and farther from a tile edge than the network's
receptive field) a tile's output equals the untiled output. Networks with instance norm normalise
each tile with its own statistics, which a single pass over the whole image does not.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Where the tiles along one side of `size` pixels start (size and tile multiples of `multiple`);
    neighbours overlap by at least `overlap`, and the last tile ends at the border."""
    if size <= tile:
        return [0]
    step = (tile - overlap) // multiple * multiple
    if step <= 0:
        raise ValueError(f"--tile {tile} leaves no step after --tile_overlap {overlap} at this network's size "
                         f"multiple {multiple}: use a larger --tile or a smaller --tile_overlap")
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, taper_start: bool, taper_end: bool) -> torch.Tensor:
    """1-D weights: 1 in the middle, a raised cosine over the first/last `overlap` positions."""
    w = torch.ones(length, dtype=torch.float64)
    n = min(overlap, length)
    # 0.5 - 0.5 cos(pi (i + 1) / (n + 1)): strictly inside (0, 1), and w(i) + w(n - 1 - i) = 1
    rise = torch.tensor([0.5 - 0.5 * math.cos(math.pi * (i + 1) / (n + 1)) for i in range(n)], dtype=torch.float64)
    if taper_start and n:
        w[:n] = rise
    if taper_end and n:
        w[length - n:] = torch.minimum(w[length - n:], rise.flip(0))
    return w


def translate_tiled(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
                    multiple: int, tiles_per_batch: int = 4) -> torch.Tensor:
    """run(x) computed tile by tile: x is (N, C, H, W) with H and W multiples of `multiple`; `run`
    maps (n, C, h, w) to (n, C', h, w). Peak memory is that of `tiles_per_batch` tiles plus the output."""
    tile = max(multiple, tile // multiple * multiple)
    n, _, height, width = x.shape
    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, th, overlap, multiple), tile_starts(width, tw, overlap, multiple)
    boxes = [(y, x0) for y in ys for x0 in xs]
    out = weight = None
    for first in range(0, len(boxes), tiles_per_batch):
        chunk = boxes[first:first + tiles_per_batch]
        results = run(torch.cat([x[..., y:y + th, x0:x0 + tw] for y, x0 in chunk])).float()
        if out is None:
            out = torch.zeros(n, results.shape[1], height, width, device=results.device)
            weight = torch.zeros(1, 1, height, width, device=results.device)
        for k, (y, x0) in enumerate(chunk):
            wy = _ramp(th, overlap, y > 0, y + th < height)
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < width)
            w = (wy[:, None] * wx[None, :]).to(out.device, torch.float32)
            out[..., y:y + th, x0:x0 + tw] += results[k * n:(k + 1) * n] * w
            weight[..., y:y + th, x0:x0 + tw] += w
    return out / weight
