"""Mean absolute error between two tensors: the cycle, identity and pix2pix L1 terms.

The fused backends ('triton' in pyi2i/ops/l1_loss_triton.py, 'cuda' in csrc/loss_reduce/) share the
glue below: the operators `l1_loss_fwd(x, y) -> loss` (fp32) and `l1_loss_bwd(grad, x, y) -> (dx, dy)`
(both like x), their fake kernels and autograd formula (see _library).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops import _library
from pyi2i.ops._layout import KERNEL_DTYPES, dense
from pyi2i.ops._dispatch import select

FWD_SCHEMA = "(Tensor x, Tensor y) -> Tensor"
BWD_SCHEMA = "(Tensor grad, Tensor x, Tensor y) -> (Tensor grad_x, Tensor grad_y)"


def _l1_loss_ref(x: torch.Tensor, y: torch.Tensor, upcast: bool = False) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` reduces in fp32."""
    if upcast:
        x, y = x.float(), y.float()
    return F.l1_loss(x, y)


def l1_loss(x: torch.Tensor, y: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """mean(|x - y|) over all elements; x and y of one shape (any layout). Returns a scalar."""
    if x.shape != y.shape:
        raise ValueError(f"l1_loss needs tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    fn = select("l1_loss", impl, x, _l1_loss_ref)
    return fn(x, y)


def fused(x: torch.Tensor, y: torch.Tensor, backend: str) -> torch.Tensor:
    """l1_loss through `backend`'s operators, with the dtypes the reference gives: the loss in the
    promoted dtype of x and y (fp32 under autocast), each gradient in its input's dtype.

    Mixed dtypes (a bf16 network output against an fp32 image) are promoted here rather than in
    each kernel: the kernels then read one dtype, and the cast of the lower-precision input is
    fused with the copy that gives y x's strides when one is needed, so no tensor is cast twice.
    Autograd casts each gradient back to its input's dtype."""
    if x.numel() == 0:
        raise ValueError("l1_loss needs non-empty tensors")
    dtype = torch.promote_types(x.dtype, y.dtype)
    if dtype not in KERNEL_DTYPES:
        raise TypeError(f"the fused l1_loss takes float32, float16 or bfloat16, got {x.dtype} and {y.dtype}")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}")
    x = dense(x).to(dtype)  # .to keeps a dense layout
    y = y.to(dtype) if y.stride() == x.stride() else torch.empty_like(x).copy_(y)
    loss = _library.backend_ops(backend).l1_loss_fwd(x, y)
    return loss.to(_library.loss_dtype(x.device.type, dtype))


def _fake_fwd(x, y):
    return x.new_empty((), dtype=torch.float32)


def _fake_bwd(grad, x, y):
    grad_x = torch.empty_like(dense(x))
    return grad_x, torch.empty_like(grad_x)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, y = ctx.saved_tensors
    grad_x, grad_y = ctx.ops.l1_loss_bwd(grad, x, y)
    return grad_x if ctx.needs_input_grad[0] else None, grad_y if ctx.needs_input_grad[1] else None


_library.register("l1_loss", fake_fwd=_fake_fwd, fake_bwd=_fake_bwd, setup_context=_setup_context,
                  backward=_backward, triton_schemas=(FWD_SCHEMA, BWD_SCHEMA))
