"""Triton backend of instance_norm_act (semantics and glue: pyi2i/ops/norm_act.py; device code:
kernels/norm_act.py, installed as pyi2i._triton.norm_act). The kernels of the operators

    pyi2i::instance_norm_act_fwd(x, weight, bias, residual, act, eps) -> (y, mean, rstd)
    pyi2i::instance_norm_act_bwd(dy, x, weight, bias, mean, rstd, act) -> (dx, dweight, dbias)

For backward only x and the (N * C,) fp32 statistics are kept: x_hat and the sign of the
pre-activation are recomputed from them, which costs less than storing and reading x_hat back.
The residual's gradient is dy itself.

x is read in its own memory format when it is NCHW- or channels_last-contiguous; any other layout
is copied to NCHW first. The output (and dx) is in the format read.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from pyi2i.ops._layout import memory_format as _memory_format
from pyi2i.ops._triton_util import (
    device_guard,
    kernels,
    next_power_of_2,
    parallel_programs,
    unavailable_reason,
)
from pyi2i.ops.norm_act import LEAKY_RELU_SLOPE, fused

__all__ = ["instance_norm_act", "unavailable_reason"]

# Launch heuristics. Configs are chosen from the shape rather than autotuned, which needs a GPU to
# time on. Module attributes, so they can be tuned, and so the tests can send tiny shapes down the
# looped and split paths.
MAX_TILE = 4096     # elements of one [BLOCK_C, BLOCK_HW] tile: 16 fp32 a thread at 8 warps
PACK_TILE = 512     # NCHW planes smaller than this share a tile with neighbouring channels
NHWC_BLOCK_C = 32   # channels a tile row holds in NHWC: 128 contiguous bytes in fp32
TARGET_PROGRAMS: int | None = None  # rows are split when fewer programs than this; None: from the device


class _Plan(NamedTuple):
    grid: tuple[int, int]          # (N * channel blocks, SPLIT)
    geometry: tuple[int, ...]      # the kernels' NC, C, HW, num_cblocks, stride_n, stride_c, stride_hw, hw_per_split
    blocks: dict[str, int]         # BLOCK_C, BLOCK_HW, SPLIT, num_warps
    one_tile: bool                 # a row fits one tile: read once, kept in registers


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _plan(x: torch.Tensor, channels_last: bool) -> _Plan:
    """Tile shape and row split for x, read as NCHW or NHWC: coalesced tiles of up to MAX_TILE
    elements, and rows cut into ranges of whole tiles until TARGET_PROGRAMS programs run."""
    N, C, H, W = x.shape
    HW = H * W
    hw_pow2 = next_power_of_2(HW)
    if channels_last:
        block_c = min(next_power_of_2(C), NHWC_BLOCK_C, MAX_TILE)
        strides = (HW * C, 1, C)
    else:
        block_c = min(next_power_of_2(C), max(1, min(PACK_TILE, MAX_TILE) // hw_pow2))
        strides = (C * HW, HW, 1)
    block_hw = min(hw_pow2, max(1, MAX_TILE // block_c))
    num_cblocks = _cdiv(C, block_c)
    num_tiles = _cdiv(HW, block_hw)
    target = TARGET_PROGRAMS if TARGET_PROGRAMS is not None else parallel_programs(x.device)
    split = min(num_tiles, max(1, _cdiv(target, N * num_cblocks)))
    tiles_per_split = _cdiv(num_tiles, split)
    split = _cdiv(num_tiles, tiles_per_split)  # every range holds at least one element
    hw_per_split = tiles_per_split * block_hw if split > 1 else HW
    return _Plan(
        grid=(N * num_cblocks, split),
        geometry=(N * C, C, HW, num_cblocks, *strides, hw_per_split),
        blocks=dict(BLOCK_C=block_c, BLOCK_HW=block_hw, SPLIT=split,
                    num_warps=max(1, min(8, block_c * block_hw // 256))),
        one_tile=num_tiles == 1,
    )


def _split_buffer(plan: _Plan, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """The (2, SPLIT, N*C) partial results of the row ranges; None when rows are not split."""
    split = plan.blocks["SPLIT"]
    return None if split == 1 else torch.empty((2, split, plan.geometry[0]), dtype=dtype, device=x.device)


def _act_meta(act: str, weight: torch.Tensor | None, bias: torch.Tensor | None) -> dict:
    return dict(ACT=act, SLOPE=LEAKY_RELU_SLOPE, HAS_W=weight is not None, HAS_B=bias is not None)


instance_norm_act = functools.partial(fused, backend="triton")  # see pyi2i.ops.instance_norm_act


def fwd(x, weight, bias, residual, act: str, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The operator's kernel (arguments: see its schema in norm_act.py). y like x in the format
    read; mean and rstd (N * C,) fp32."""
    fmt = _memory_format(x)
    x = x.contiguous(memory_format=fmt)
    if residual is not None:
        residual = residual.contiguous(memory_format=fmt)
    y = torch.empty_like(x, memory_format=fmt)
    mean = torch.empty(x.shape[0] * x.shape[1], dtype=torch.float32, device=x.device)
    rstd = torch.empty_like(mean)
    if x.numel() == 0:
        return y, mean, rstd
    plan = _plan(x, fmt == torch.channels_last)
    k = kernels("norm_act")
    with device_guard(x):
        part = _split_buffer(plan, x, torch.float64)
        if part is not None:
            k.instance_norm_stats_partial_kernel[plan.grid](x, part, *plan.geometry, **plan.blocks)
        k.instance_norm_act_fwd_kernel[plan.grid](
            x, weight, bias, residual, y, mean, rstd, part, *plan.geometry, eps,
            HAS_RES=residual is not None, ONE_TILE=plan.one_tile, **_act_meta(act, weight, bias), **plan.blocks,
        )
    return y, mean, rstd


def bwd(dy, x, weight, bias, mean, rstd, act: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The operator's kernel (arguments: see its schema in norm_act.py). dx like x in the format
    read; dweight and dbias (C,) fp32 (the sums over N and HW)."""
    fmt = _memory_format(x)
    x = x.contiguous(memory_format=fmt)
    dy = dy.contiguous(memory_format=fmt)
    dx = torch.empty_like(x, memory_format=fmt)
    sums = torch.zeros((2, *x.shape[:2]), dtype=torch.float32, device=x.device)
    if x.numel():
        plan = _plan(x, fmt == torch.channels_last)
        k = kernels("norm_act")
        meta = _act_meta(act, weight, bias)
        with device_guard(x):
            part = _split_buffer(plan, x, torch.float32)
            if part is not None:
                k.instance_norm_grad_partial_kernel[plan.grid](
                    dy, x, weight, bias, mean, rstd, part, *plan.geometry, **meta, **plan.blocks)
            k.instance_norm_act_bwd_kernel[plan.grid](
                dy, x, weight, bias, mean, rstd, dx, sums, part, *plan.geometry,
                ONE_TILE=plan.one_tile, **meta, **plan.blocks,
            )
    sum_dz, sum_dz_xhat = sums
    return dx, sum_dz_xhat.sum(dim=0), sum_dz.sum(dim=0)
