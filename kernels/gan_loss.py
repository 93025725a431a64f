"""GAN objectives on a discriminator's logits against a constant target, as mean reductions.

    lsgan:   loss = (x - t)^2                                 dloss/dx = 2 (x - t)
    vanilla: loss = max(x, 0) - x t + log(1 + exp(-|x|))      dloss/dx = sigmoid(x) - t

The target t is a compile-time constant, so it is never read from memory. The forward writes one
fp32 partial sum per program (the caller reduces those in a fixed order: deterministic, no
atomics); the backward is a separate pass reading x again rather than a gradient stored by the
forward, which saves a write and a read of a tensor the size of x.
"""

import triton
import triton.language as tl

from ._reduce import total


@triton.jit
def _loss_and_grad(x, TARGET: tl.constexpr, MODE: tl.constexpr):
    if MODE == "lsgan":
        diff = x - TARGET
        return diff * diff, 2.0 * diff
    else:
        # one exp serves the loss and the sigmoid; exp(-|x|) cannot overflow
        e = tl.exp(-tl.abs(x))
        u = 1.0 + e
        # log1p(e) without libdevice: log(u) * e / (u - 1) cancels the rounding of u = 1 + e
        log1p_e = tl.where(u == 1.0, e, tl.log(u) * (e / tl.where(u == 1.0, 1.0, u - 1.0)))
        sigmoid = tl.where(x >= 0, 1.0 / u, e / u)
        return tl.maximum(x, 0.0) - x * TARGET + log1p_e, sigmoid - TARGET


@triton.jit
def gan_loss_fwd_kernel(
    x_ptr,        # (numel,) logits, dense memory in any order; fp32, fp16 or bf16
    partial_ptr,  # (cdiv(numel, BLOCK),) fp32, written: the sum of the loss over each block
    numel,
    TARGET: tl.constexpr, MODE: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    loss, _ = _loss_and_grad(x, TARGET, MODE)
    tl.store(partial_ptr + tl.program_id(0), total(tl.where(mask, loss, 0.0), 0))


@triton.jit
def gan_loss_bwd_kernel(
    grad_ptr,  # () the gradient of the mean loss
    x_ptr,     # (numel,) logits, as in the forward
    dx_ptr,    # (numel,) written, laid out like x
    numel,
    inv_numel,
    TARGET: tl.constexpr, MODE: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    scale = tl.load(grad_ptr).to(tl.float32) * inv_numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    _, grad = _loss_and_grad(x, TARGET, MODE)
    tl.store(dx_ptr + offs, (grad * scale).to(dx_ptr.dtype.element_ty), mask=mask)
