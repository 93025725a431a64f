"""Where the training batches come from: DALI or the torch DataLoader, chosen once per run.

With --loader auto, DALI is used on a GPU when it is installed and starts; if it cannot start, the
run says why and falls back to the torch loader. With --loader dali, that is an error instead.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import torch

from pyi2i.config import DataConfig, TrainConfig
from pyi2i.data import create_dataset, create_loader
from pyi2i.data.dali import DaliLoader, DaliUnavailable, OutputBuffers, resolve_loader
from pyi2i.data.datasets import ImageDataset
from pyi2i.engine import distributed
from pyi2i.engine.graphs import prefetch_to_device

log = logging.getLogger("pyi2i")


def training_dataset(config: TrainConfig) -> ImageDataset:
    """The dataset a resolved configuration trains on: its data section, with the networks' channels
    and the run's seed."""
    return create_dataset(config.data, input_nc=config.model.input_nc, output_nc=config.model.output_nc,
                          seed=config.run.seed)


class Batches:
    """The epochs of one rank's share of `dataset`, on `device`, in `memory_format`."""

    def __init__(self, dataset: ImageDataset, data: DataConfig, *, seed: int, device: torch.device,
                 world: distributed.World, memory_format: torch.memory_format = torch.contiguous_format):
        self.dataset, self.data, self.seed = dataset, data, seed
        self.device, self.world, self.memory_format = device, world, memory_format
        # More loader processes than cores only slows the step down.
        self.num_workers = min(data.num_threads, len(os.sched_getaffinity(0)))
        self.dali = self.make_dali() if resolve_loader(data.loader, device) == "dali" else None

    @property
    def name(self) -> str:
        return "DALI" if self.dali is not None else "torch"

    def make_dali(self) -> DaliLoader | None:
        """The DALI loader; with --loader auto, None (the torch loader) if DALI cannot start here."""
        try:
            return DaliLoader(self.dataset, batch_size=self.data.batch_size, shuffle=not self.data.serial_batches,
                              seed=self.seed, device=self.device, num_threads=self.num_workers,
                              rank=self.world.rank, world_size=self.world.world_size,
                              channels_last=self.memory_format == torch.channels_last)
        except Exception as e:
            if self.data.loader == "dali":
                raise DaliUnavailable(f"--loader dali: DALI could not start on {self.device}: {e}; "
                                      "use --loader torch") from e
            log.warning("DALI could not start on %s (%s); loading with the torch loader", self.device, e)
            return None

    def epoch(self, epoch: int, start_batch: int = 0, out: OutputBuffers | None = None) -> Iterator[dict]:
        """The batches of `epoch` from batch `start_batch` on. DALI prefetches on its own and can
        write into `out` (a captured graph's input buffers); the torch loader's batches are copied
        to the device ahead of use."""
        if self.dali is not None:
            return self.dali.epoch(epoch, start_batch, out=out)
        loader = create_loader(self.dataset, batch_size=self.data.batch_size, shuffle=not self.data.serial_batches,
                               num_workers=self.num_workers, seed=self.seed, epoch=epoch, start_batch=start_batch,
                               rank=self.world.rank, world_size=self.world.world_size,
                               pin_memory=self.device.type == "cuda")
        return prefetch_to_device(loader, self.device, self.memory_format)
