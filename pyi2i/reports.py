"""What a run leaves for people to read: the loss log (CSV), per-epoch sample grids (PNG) and
TensorBoard event files. The HTML report built from them is pyi2i.run_report."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pyi2i import fileio

log = logging.getLogger("pyi2i")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, 3) uint8, truncating as the original release does
    (so pixel values match its outputs exactly); one channel is repeated to three."""
    x = images.detach().float().cpu().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return ((x.permute(0, 2, 3, 1).numpy() + 1) / 2 * 255).astype(np.uint8)


def viewable(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 3 or 1, H, W) for people to look at: RGB as it is, the first three
    channels of more, and the first channel alone (gray) of one or two."""
    return images[:, :3] if images.shape[1] >= 3 else images[:, :1]


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """One (C, H, W) image in [-1, 1] as a PNG (or whatever the suffix names)."""
    Image.fromarray(to_uint8(viewable(image[None]))[0]).save(path)


def image_grid(visuals: dict[str, torch.Tensor | None], max_rows: int = 4, pad: int = 2) -> np.ndarray:
    """(H, W, 3) uint8: one column per visual (in the given order), one row per sample; images of
    one channel in gray, of other counts as `viewable` shows them."""
    columns = [to_uint8(viewable(v[:max_rows])) for v in visuals.values() if v is not None]
    rows, h, w = columns[0].shape[:3]
    grid = np.full((rows * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for j, images in enumerate(columns):
        for i, image in enumerate(images):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = image
    return grid


def save_grid(visuals: dict[str, torch.Tensor | None], path: str | Path) -> np.ndarray:
    """The image_grid of `visuals` as a PNG; returns the grid."""
    grid = image_grid(visuals)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return grid


class CsvLog:
    """Appends rows to a CSV file, writing the header when the file is new (resumed runs append).

    A file written with other columns (by an earlier version) is rewritten once with the columns of
    both, so that appended rows stay under their headers."""

    def __init__(self, path: str | Path, fields: list[str]):
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._rewrite([])
            return
        with self.path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != fields:
            self.fields = header + [k for k in fields if k not in header]
            self._rewrite(read_csv(self.path))

    def _rewrite(self, rows: list[dict]) -> None:
        with fileio.atomic_write(self.path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.fields)
            writer.writerows([row.get(k, "") for k in self.fields] for row in rows)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.fields])

    def drop_after(self, step: int) -> int:
        """Removes the rows of steps after `step` (logged by a session that stopped before its next
        checkpoint, which a resumed run logs again); returns how many."""
        rows = read_csv(self.path)
        kept = [row for row in rows if not row.get("step") or int(row["step"]) <= step]
        if len(kept) < len(rows):
            self._rewrite(kept)
        return len(rows) - len(kept)


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_csv(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


class TensorBoardLog:
    """Scalars and images as TensorBoard event files in `folder`; does nothing when switched off.

    `enabled` None means: on if TensorBoard is installed. `purge_step` (a resumed run's step) makes
    TensorBoard drop what an interrupted earlier session logged from that step on, so curves do
    not fold back on themselves."""

    def __init__(self, folder: str | Path, enabled: bool | None = None, purge_step: int | None = None):
        self.writer = None
        if enabled is False:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            if enabled:
                raise ValueError(f"--tensorboard: TensorBoard is not installed ({e}); pip install tensorboard") from e
            log.info("TensorBoard is not installed, so no event files are written (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def scalars(self, group: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image: (H, W, 3) uint8."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Dashboards:
    """Several dashboards (TensorBoardLog, WandbLog) fed as one."""

    def __init__(self, *boards):
        self.boards = boards

    def scalars(self, group: str, values: dict[str, float], step: int) -> None:
        for board in self.boards:
            board.scalars(group, values, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        for board in self.boards:
            board.image(tag, image, step)

    def flush(self) -> None:
        for board in self.boards:
            board.flush()

    def close(self) -> None:
        for board in self.boards:
            board.close()
