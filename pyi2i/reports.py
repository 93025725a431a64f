"""What a run leaves for people to read: the loss log (CSV) and per-epoch sample grids (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, 3) uint8, truncating as the original release does
    (so pixel values match its outputs exactly); one channel is repeated to three."""
    x = images.detach().float().cpu().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return ((x.permute(0, 2, 3, 1).numpy() + 1) / 2 * 255).astype(np.uint8)


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """One (C, H, W) image in [-1, 1] as a PNG (or whatever the suffix names)."""
    Image.fromarray(to_uint8(image[None])[0]).save(path)


def save_grid(visuals: dict[str, torch.Tensor | None], path: str | Path, max_rows: int = 4, pad: int = 2) -> None:
    """A grid with one column per visual (in the given order) and one row per sample."""
    columns = [to_uint8(v[:max_rows]) for v in visuals.values() if v is not None]
    rows, h, w = columns[0].shape[:3]
    grid = np.full((rows * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for j, images in enumerate(columns):
        for i, image in enumerate(images):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = image
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


class CsvLog:
    """Appends rows to a CSV file, writing the header when the file is new (resumed runs append)."""

    def __init__(self, path: str | Path, fields: list[str]):
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.fields])


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_csv(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
