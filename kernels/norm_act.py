"""Instance normalisation fused with an activation and a residual add, forward and backward.

    y = residual + act(((x - mean) * rstd) * w + b)      per row (n, c), statistics over H x W

A tensor is addressed as rows (n, c) of HW elements through three strides, so the same kernels read
NCHW (stride_hw = 1) and NHWC (stride_c = 1) memory as it lies. A program owns BLOCK_C channels of
one sample and walks their rows in [BLOCK_C, BLOCK_HW] tiles; Triton specialises a stride of 1 and
coalesces along it, so in NHWC a tile row is BLOCK_C neighbouring channels.

Passes over memory:
- ONE_TILE (a whole row fits one tile): x (and dy) are read once, kept in registers, and the
  statistics are the exact two-pass mean and centred sum of squares.
- Otherwise the row is read twice: the statistics (forward) or the two gradient sums (backward),
  then the output pass.
- SPLIT > 1 (too few rows to fill the device): each row is cut into SPLIT ranges of whole tiles.
  A partial kernel writes per-range results to a small (2, SPLIT, N*C) buffer and every program of
  the main kernel merges the SPLIT entries of its rows in the same fixed order, so results are
  bitwise reproducible without atomics.
Statistics are each tile's fp32 mean and centred sum of squares, merged across tiles and ranges
with Chan's formula in fp64, which stays accurate for rows of a million elements with a large mean.
"""

import triton
import triton.language as tl

from ._reduce import total


@triton.jit
def _program_rows(C, HW, num_cblocks, stride_n, hw_per_split, BLOCK_C: tl.constexpr):
    """The channels this program owns, the first element of its sample and its range of HW."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    n = pid // num_cblocks
    c = (pid % num_cblocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    row = n * C + c
    base = n.to(tl.int64) * stride_n  # a batch can exceed 2**31 elements; one sample cannot
    hw_lo = split * hw_per_split
    hw_hi = tl.minimum(hw_lo + hw_per_split, HW)
    return c, c_mask, row, base, split, hw_lo, hw_hi


@triton.jit
def _tile(c, c_mask, hw0, hw_hi, stride_c, stride_hw, BLOCK_HW: tl.constexpr):
    hw = hw0 + tl.arange(0, BLOCK_HW)
    offs = c[:, None] * stride_c + hw[None, :] * stride_hw
    mask = c_mask[:, None] & (hw < hw_hi)[None, :]
    return offs, mask


@triton.jit
def _affine(w_ptr, b_ptr, c, c_mask, HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK_C: tl.constexpr):
    if HAS_W:
        w = tl.load(w_ptr + c, mask=c_mask, other=1.0).to(tl.float32)
    else:
        w = tl.full([BLOCK_C], 1.0, tl.float32)
    if HAS_B:
        b = tl.load(b_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    else:
        b = tl.full([BLOCK_C], 0.0, tl.float32)
    return w, b


@triton.jit
def _merge(mean_a, m2_a, n_a, mean_b, m2_b, n_b):
    """Chan's merge of the (mean, centred sum of squares) of n_a elements, in fp64, with those of
    the next n_b. fp64 because a row of a million elements takes hundreds of merges, and fp32
    rounding of a running mean far from 0 would add up over them; the tiles' own sums stay fp32."""
    n_a = tl.cast(n_a, tl.float64)  # counts may arrive as Python ints in the interpreter
    n_b = tl.cast(n_b, tl.float64)
    ratio = n_b / (n_a + n_b)
    delta = mean_b.to(tl.float64) - mean_a
    return mean_a + delta * ratio, m2_a + m2_b.to(tl.float64) + delta * delta * (n_a * ratio)


@triton.jit
def _tile_moments(x, mask, count):
    mean = total(x, 1) / count
    centred = tl.where(mask, x - mean[:, None], 0.0)
    return mean, total(centred * centred, 1), centred


@triton.jit
def _range_moments(x_ptr, c, c_mask, hw_lo, hw_hi, stride_c, stride_hw,
                   BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    mean = tl.full([BLOCK_C], 0.0, tl.float64)
    m2 = tl.full([BLOCK_C], 0.0, tl.float64)
    for hw0 in range(hw_lo, hw_hi, BLOCK_HW):
        offs, mask = _tile(c, c_mask, hw0, hw_hi, stride_c, stride_hw, BLOCK_HW)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        count = tl.minimum(hw_hi - hw0, BLOCK_HW)
        t_mean, t_m2, _ = _tile_moments(x, mask, count * 1.0)
        mean, m2 = _merge(mean, m2, hw0 - hw_lo, t_mean, t_m2, count)
    return mean, m2


@triton.jit
def _activate(z, ACT: tl.constexpr, SLOPE: tl.constexpr):
    if ACT == "relu":
        z = tl.maximum(z, 0.0)
    elif ACT == "leaky_relu":
        z = tl.where(z > 0, z, z * SLOPE)
    return z


@triton.jit
def _activation_grad(dy, z, ACT: tl.constexpr, SLOPE: tl.constexpr):
    # z > 0 picks the slope at z == 0 the way PyTorch's relu and leaky_relu backward do
    if ACT == "relu":
        dy = tl.where(z > 0, dy, 0.0)
    elif ACT == "leaky_relu":
        dy = tl.where(z > 0, dy, dy * SLOPE)
    return dy


@triton.jit
def _store_output(y_ptr, res_ptr, offs, mask, x_hat, w, b,
                  ACT: tl.constexpr, SLOPE: tl.constexpr, HAS_RES: tl.constexpr):
    y = _activate(x_hat * w[:, None] + b[:, None], ACT, SLOPE)
    if HAS_RES:
        y += tl.load(res_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def instance_norm_stats_partial_kernel(
    x_ptr,     # (N, C, HW) through (stride_n, stride_c, stride_hw)
    part_ptr,  # (2, SPLIT, N*C) fp64: mean and centred sum of squares of each row range
    NC, C, HW, num_cblocks, stride_n, stride_c, stride_hw, hw_per_split,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SPLIT: tl.constexpr,
):
    c, c_mask, row, base, split, hw_lo, hw_hi = _program_rows(C, HW, num_cblocks, stride_n, hw_per_split, BLOCK_C)
    mean, m2 = _range_moments(x_ptr + base, c, c_mask, hw_lo, hw_hi, stride_c, stride_hw, BLOCK_C, BLOCK_HW)
    tl.store(part_ptr + split * NC + row, mean, mask=c_mask)
    tl.store(part_ptr + (SPLIT + split) * NC + row, m2, mask=c_mask)


@triton.jit
def instance_norm_act_fwd_kernel(
    x_ptr,     # (N, C, HW) through (stride_n, stride_c, stride_hw); fp32, fp16 or bf16
    w_ptr,     # (C,) or None
    b_ptr,     # (C,) or None
    res_ptr,   # (N, C, HW) with x's strides, or None
    y_ptr,     # (N, C, HW) with x's strides and dtype
    mean_ptr,  # (N*C,) fp32, written
    rstd_ptr,  # (N*C,) fp32, written
    part_ptr,  # (2, SPLIT, N*C) fp64 from instance_norm_stats_partial_kernel; None when SPLIT == 1
    NC, C, HW, num_cblocks, stride_n, stride_c, stride_hw, hw_per_split, eps,
    ACT: tl.constexpr, SLOPE: tl.constexpr,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_RES: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SPLIT: tl.constexpr, ONE_TILE: tl.constexpr,
):
    c, c_mask, row, base, split, hw_lo, hw_hi = _program_rows(C, HW, num_cblocks, stride_n, hw_per_split, BLOCK_C)
    x_ptr += base
    y_ptr += base
    if HAS_RES:
        res_ptr += base
    w, b = _affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B, BLOCK_C)
    if ONE_TILE:
        offs, mask = _tile(c, c_mask, 0, HW, stride_c, stride_hw, BLOCK_HW)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean, m2, centred = _tile_moments(x, mask, HW * 1.0)
        rstd = 1.0 / tl.sqrt(m2 / HW + eps)
        _store_output(y_ptr, res_ptr, offs, mask, centred * rstd[:, None], w, b, ACT, SLOPE, HAS_RES)
    else:
        if SPLIT == 1:
            mean, m2 = _range_moments(x_ptr, c, c_mask, 0, HW, stride_c, stride_hw, BLOCK_C, BLOCK_HW)
        else:
            mean = tl.full([BLOCK_C], 0.0, tl.float64)
            m2 = tl.full([BLOCK_C], 0.0, tl.float64)
            for i in range(SPLIT):
                part_mean = tl.load(part_ptr + i * NC + row, mask=c_mask, other=0.0)
                part_m2 = tl.load(part_ptr + (SPLIT + i) * NC + row, mask=c_mask, other=0.0)
                count = tl.minimum(hw_per_split, HW - i * hw_per_split)
                mean, m2 = _merge(mean, m2, i * hw_per_split, part_mean, part_m2, count)
        rstd = (1.0 / tl.sqrt(m2 / HW + eps)).to(tl.float32)
        mean = mean.to(tl.float32)
        for hw0 in range(hw_lo, hw_hi, BLOCK_HW):
            offs, mask = _tile(c, c_mask, hw0, hw_hi, stride_c, stride_hw, BLOCK_HW)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            x_hat = (x - mean[:, None]) * rstd[:, None]
            _store_output(y_ptr, res_ptr, offs, mask, x_hat, w, b, ACT, SLOPE, HAS_RES)
    if split == 0:
        tl.store(mean_ptr + row, mean, mask=c_mask)
        tl.store(rstd_ptr + row, rstd, mask=c_mask)


@triton.jit
def _load_dz_xhat(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, ACT: tl.constexpr, SLOPE: tl.constexpr):
    """dz: the gradient at the affine output (before the activation), 0 outside the mask;
    x_hat is recomputed from the saved statistics rather than stored by the forward."""
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x_hat = (x - mean[:, None]) * rstd[:, None]
    dz = _activation_grad(dy, x_hat * w[:, None] + b[:, None], ACT, SLOPE)
    return dz, x_hat


@triton.jit
def _range_grad_sums(x_ptr, dy_ptr, c, c_mask, hw_lo, hw_hi, stride_c, stride_hw, mean, rstd, w, b,
                     ACT: tl.constexpr, SLOPE: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    # Tile-shaped accumulators, reduced once after the loop: a reduction inside the loop costs a
    # cross-thread exchange per tile, and Triton 3.8's thread-locality pass fails to compile that
    # pattern for sm_90 at BLOCK_C=1, BLOCK_HW=4096 (bench/compile.py found it).
    acc_dz = tl.full([BLOCK_C, BLOCK_HW], 0.0, tl.float32)
    acc_dz_xhat = tl.full([BLOCK_C, BLOCK_HW], 0.0, tl.float32)
    for hw0 in range(hw_lo, hw_hi, BLOCK_HW):
        offs, mask = _tile(c, c_mask, hw0, hw_hi, stride_c, stride_hw, BLOCK_HW)
        dz, x_hat = _load_dz_xhat(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, ACT, SLOPE)
        acc_dz += dz
        acc_dz_xhat += dz * x_hat
    return total(acc_dz, 1), total(acc_dz_xhat, 1)


@triton.jit
def _store_dx(dx_ptr, offs, mask, dz, x_hat, sum_dz, sum_dz_xhat, w, rstd, HW):
    mean_dz = sum_dz / HW
    mean_dz_xhat = sum_dz_xhat / HW
    dx = (w * rstd)[:, None] * (dz - mean_dz[:, None] - x_hat * mean_dz_xhat[:, None])
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _program_stats(mean_ptr, rstd_ptr, w_ptr, b_ptr, row, c, c_mask,
                   HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK_C: tl.constexpr):
    mean = tl.load(mean_ptr + row, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + row, mask=c_mask, other=0.0)
    w, b = _affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B, BLOCK_C)
    return mean, rstd, w, b


@triton.jit
def instance_norm_grad_partial_kernel(
    dy_ptr,    # (N, C, HW) with x's strides
    x_ptr,     # (N, C, HW) through (stride_n, stride_c, stride_hw)
    w_ptr,     # (C,) or None
    b_ptr,     # (C,) or None
    mean_ptr,  # (N*C,) fp32 from the forward
    rstd_ptr,  # (N*C,) fp32 from the forward
    part_ptr,  # (2, SPLIT, N*C) fp32: sum(dz) and sum(dz * x_hat) of each row range
    NC, C, HW, num_cblocks, stride_n, stride_c, stride_hw, hw_per_split,
    ACT: tl.constexpr, SLOPE: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SPLIT: tl.constexpr,
):
    c, c_mask, row, base, split, hw_lo, hw_hi = _program_rows(C, HW, num_cblocks, stride_n, hw_per_split, BLOCK_C)
    mean, rstd, w, b = _program_stats(mean_ptr, rstd_ptr, w_ptr, b_ptr, row, c, c_mask, HAS_W, HAS_B, BLOCK_C)
    sum_dz, sum_dz_xhat = _range_grad_sums(x_ptr + base, dy_ptr + base, c, c_mask, hw_lo, hw_hi, stride_c, stride_hw,
                                           mean, rstd, w, b, ACT, SLOPE, BLOCK_C, BLOCK_HW)
    tl.store(part_ptr + split * NC + row, sum_dz, mask=c_mask)
    tl.store(part_ptr + (SPLIT + split) * NC + row, sum_dz_xhat, mask=c_mask)


@triton.jit
def instance_norm_act_bwd_kernel(
    dy_ptr,    # (N, C, HW) with x's strides
    x_ptr,     # (N, C, HW) through (stride_n, stride_c, stride_hw)
    w_ptr,     # (C,) or None
    b_ptr,     # (C,) or None
    mean_ptr,  # (N*C,) fp32 from the forward
    rstd_ptr,  # (N*C,) fp32 from the forward
    dx_ptr,    # (N, C, HW) with x's strides and dtype
    sums_ptr,  # (2, N*C) fp32, written: per-row sum(dz) and sum(dz * x_hat), for the weight and bias grads
    part_ptr,  # (2, SPLIT, N*C) fp32 from instance_norm_grad_partial_kernel; None when SPLIT == 1
    NC, C, HW, num_cblocks, stride_n, stride_c, stride_hw, hw_per_split,
    ACT: tl.constexpr, SLOPE: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SPLIT: tl.constexpr, ONE_TILE: tl.constexpr,
):
    c, c_mask, row, base, split, hw_lo, hw_hi = _program_rows(C, HW, num_cblocks, stride_n, hw_per_split, BLOCK_C)
    x_ptr += base
    dy_ptr += base
    dx_ptr += base
    mean, rstd, w, b = _program_stats(mean_ptr, rstd_ptr, w_ptr, b_ptr, row, c, c_mask, HAS_W, HAS_B, BLOCK_C)
    if ONE_TILE:
        offs, mask = _tile(c, c_mask, 0, HW, stride_c, stride_hw, BLOCK_HW)
        dz, x_hat = _load_dz_xhat(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, ACT, SLOPE)
        sum_dz = total(dz, 1)
        sum_dz_xhat = total(dz * x_hat, 1)
        _store_dx(dx_ptr, offs, mask, dz, x_hat, sum_dz, sum_dz_xhat, w, rstd, HW)
    else:
        if SPLIT == 1:
            sum_dz, sum_dz_xhat = _range_grad_sums(x_ptr, dy_ptr, c, c_mask, 0, HW, stride_c, stride_hw,
                                                   mean, rstd, w, b, ACT, SLOPE, BLOCK_C, BLOCK_HW)
        else:
            sum_dz = tl.full([BLOCK_C], 0.0, tl.float32)
            sum_dz_xhat = tl.full([BLOCK_C], 0.0, tl.float32)
            for i in range(SPLIT):
                sum_dz += tl.load(part_ptr + i * NC + row, mask=c_mask, other=0.0)
                sum_dz_xhat += tl.load(part_ptr + (SPLIT + i) * NC + row, mask=c_mask, other=0.0)
        for hw0 in range(hw_lo, hw_hi, BLOCK_HW):
            offs, mask = _tile(c, c_mask, hw0, hw_hi, stride_c, stride_hw, BLOCK_HW)
            dz, x_hat = _load_dz_xhat(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, ACT, SLOPE)
            _store_dx(dx_ptr, offs, mask, dz, x_hat, sum_dz, sum_dz_xhat, w, rstd, HW)
    if split == 0:
        tl.store(sums_ptr + row, sum_dz, mask=c_mask)
        tl.store(sums_ptr + NC + row, sum_dz_xhat, mask=c_mask)
