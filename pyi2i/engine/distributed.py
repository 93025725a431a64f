"""Data-parallel training over processes started by torchrun (one process per GPU, or per CPU slot).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address); without them, or with
WORLD_SIZE 1, everything here is a no-op and training runs as a single process. Each rank trains
on its own share of every epoch's batches; DistributedDataParallel averages the gradients, so with
losses that are means over the batch, N ranks at batch b take the steps of one process at batch N*b.

Collectives of the training state (gradients, losses) run on the device's backend (NCCL on GPUs,
gloo on CPUs). Small control messages (whether to stop, per-rank state for checkpoints) go through
a gloo group on the CPU, so that they never wait on the GPU's queue.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger("pyi2i")

# Rank 0 evaluates (Inception features of the whole test split) while the other ranks wait at the
# next collective: allow for that rather than the shorter NCCL default.
TIMEOUT = datetime.timedelta(minutes=30)

_WORLD: World | None = None  # set once this process has joined the process group


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: Any = None  # the CPU (gloo) process group for control messages

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.control)

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the body first (e.g. writes files); the others run it after it has finished."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank (e.g. one rank received Ctrl-C)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        return bool(value.item())

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over the ranks (on its device's backend), in place."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor /= self.world_size
        return tensor

    def gather(self, obj) -> list | None:
        """Every rank's `obj` on rank 0 (in rank order), None elsewhere."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.control)
        return out


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Joins the process group when launched by torchrun (once; later calls return the same world).
    Returns the world and this rank's device: with CUDA, the GPU numbered LOCAL_RANK."""
    if not launched():
        return World(), device
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index not in (None, local_rank):
            raise ValueError(f"under torchrun each process uses the GPU numbered by its LOCAL_RANK, but --device "
                             f"{device} was given; use --device cuda (or auto), and CUDA_VISIBLE_DEVICES to choose GPUs")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} visible GPU(s): "
                             "start at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    global _WORLD
    if _WORLD is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():  # a script of the user's may have joined already
            dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if device.type == "cuda" else None)
        backend = dist.get_backend()
        control = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend != "gloo" else dist.group.WORLD
        _WORLD = World(rank, world_size, local_rank, control)
        if not _WORLD.is_main:
            # One voice: the other ranks only speak up about errors.
            logging.getLogger("pyi2i").setLevel(logging.ERROR)
        log.info("distributed training: %d processes (%s), this is rank %d on %s", world_size, backend, rank, device)
    return _WORLD, device


def current() -> World:
    """The world this process joined with `setup`; a single process before that."""
    return _WORLD or World()


def teardown() -> None:
    global _WORLD
    if _WORLD is not None and dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = None


def unsupported(world: World, device: torch.device, *, cuda_graphs: bool, norm: str) -> str | None:
    """Why a run with these settings cannot train in `world` on `device`, or None."""
    if not world.distributed:
        return None
    if cuda_graphs and device.type == "cuda":
        return ("--cuda-graphs is not supported with more than one process yet: the captured step would have to "
                "hold DDP's all-reduce (see the README's multi-GPU section). Train without --cuda-graphs; DDP "
                "overlaps its all-reduce with the backward pass")
    if norm == "syncbatch" and device.type != "cuda":
        return ("--norm syncbatch needs CUDA devices (PyTorch's SyncBatchNorm has no CPU implementation); on CPUs "
                "use --norm batch, which normalises each process's batch alone")
    return None


def data_parallel(net: nn.Module, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """`net` (whose parameters stay those of the given module) wrapped for gradient averaging.

    With `sync_batchnorm`, batch-norm layers are first replaced in place by SyncBatchNorm, which
    normalises with the statistics of the global batch; it shares their parameters and buffers and
    keeps their names, so checkpoints keep the original layout."""
    if sync_batchnorm:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    # Buffers are broadcast from rank 0 at each forward, as DDP does by default: batch norm's running
    # statistics then follow rank 0, like the single-process run's follow its batches.
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
