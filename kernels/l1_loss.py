"""Mean absolute error: loss = mean |x - y|, dloss/dx = sign(x - y) / numel = -dloss/dy.

The forward writes one fp32 partial sum per program (the caller reduces those in a fixed order:
deterministic, no atomics); the backward reads x and y again rather than a gradient stored by the
forward, which saves a write and a read of a tensor the size of x.
"""

import triton
import triton.language as tl

from ._reduce import total


@triton.jit
def l1_loss_fwd_kernel(
    x_ptr,        # (numel,) dense memory in any order; fp32, fp16 or bf16
    y_ptr,        # (numel,) in x's element order; its own dtype
    partial_ptr,  # (cdiv(numel, BLOCK),) fp32, written: the sum of |x - y| over each block
    numel,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(partial_ptr + tl.program_id(0), total(tl.abs(x - y), 0))


@triton.jit
def l1_loss_bwd_kernel(
    grad_ptr,  # () the gradient of the mean loss
    x_ptr,     # (numel,) as in the forward
    y_ptr,     # (numel,) as in the forward
    dx_ptr,    # (numel,) written, laid out like x
    numel,
    inv_numel,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    scale = tl.load(grad_ptr).to(tl.float32) * inv_numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # sign(0) = 0, as in PyTorch's l1_loss backward
    sign = (x > y).to(tl.float32) - (x < y).to(tl.float32)
    tl.store(dx_ptr + offs, (sign * scale).to(dx_ptr.dtype.element_ty), mask=mask)
