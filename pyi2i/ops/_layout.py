"""Dtypes and memory layouts the fused kernels of every backend read."""

from __future__ import annotations

import torch

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_floating(name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the input is on {device}")


def dense(t: torch.Tensor) -> torch.Tensor:
    """t itself when its elements fill one block of memory (NCHW or channels_last), else a
    contiguous copy: a flat reduction may then visit the memory in order."""
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return t
    return t.contiguous()


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the kernels run x in: NCHW unless x is channels_last-contiguous (other strides
    are made NCHW-contiguous)."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
