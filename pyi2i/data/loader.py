"""One epoch of batches in an order fixed by (seed, epoch), sharded across ranks, resumable mid-epoch."""

from __future__ import annotations

import gc
import os
import signal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def _epoch_seed(seed: int, epoch: int) -> int:
    # Mixing, rather than seed + epoch, keeps (seed, epoch + 1) and (seed + 1, epoch) apart.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> list[int]:
    """Dataset indices that rank `rank` of `world_size` visits in epoch `epoch`.

    The full order is a permutation of range(n) seeded by (seed, epoch) when `shuffle`, else
    range(n). It is padded by repeating its start so that it divides evenly, and rank r takes every
    world_size-th index from position r: the ranks' slices are disjoint up to the padding, cover
    every index, and have the same length, so no rank waits on another at the end of an epoch.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if shuffle:
        generator = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    padding = -n % world_size
    if order and padding:
        order += (order * (padding // n + 1))[:padding]
    return order[rank::world_size]


# Ctrl-C, and the SIGTERM of timeout, Slurm or Kubernetes, reach the whole process group; the
# training process saves a checkpoint and stops the loader itself, so a worker must not die under it.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _leave_the_process_group(worker_id: int) -> None:
    # In a process group of its own, a worker no longer receives what is sent to the training
    # process's group, while a SIGTERM sent to it alone (the loader's own way to stop a worker that
    # hangs, and multiprocessing's at exit) still ends it. Ignoring SIGTERM instead would leave the
    # loader unable to stop its workers.
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    os.setpgid(0, 0)
    # The stop signals were blocked since the fork: what reached the old group meanwhile is pending,
    # and is dropped here, while they are ignored.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Loader(DataLoader):
    def __iter__(self):
        # The workers start here. They are forked with the stop signals blocked, so that one arriving
        # before a worker has set them to be ignored waits instead of killing it; the training
        # process gets its own as soon as the mask is restored.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        # Frozen objects are never collected: a worker inherits the training process's uncollected
        # garbage (a DALI pipeline of an earlier loader, say), and finalising it there would wait on
        # threads the fork did not copy, hanging the worker. The training process unfreezes its own.
        gc.freeze()
        try:
            return super().__iter__()
        finally:
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def create_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, num_workers: int, seed: int, epoch: int,
                  start_batch: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over one epoch of `dataset`, starting at batch `start_batch` of this rank's share.

    Skipping batches of the same order (rather than restarting the epoch) is what lets a run that
    stopped mid-epoch resume onto exactly the batches it would have seen. The last batch may be short.
    """
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    indices = epoch_order(len(dataset), seed, epoch, shuffle, rank, world_size)[start_batch * batch_size:]
    return _Loader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,
        # Fresh workers each epoch receive the dataset with its new epoch set.
        persistent_workers=False,
        worker_init_fn=_leave_the_process_group,
        # The loader draws its workers' base seed from this generator instead of the global one, so
        # iterating it leaves the training RNG untouched.
        generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)),
    )
