"""The PatchGAN discriminator's block: 4x4 convolution -> instance norm -> LeakyReLU(0.2).

    out = leaky_relu(instance_norm(conv2d(x, weight, bias, stride, padding=1)), 0.2)

with an instance norm without affine parameters (the PatchGAN's `--norm instance`). Fusing the
norm and activation after the convolution lets backward keep the convolution output alone, where
the unfused block also keeps the normalised activation.

Backends: 'cuda' (csrc/conv_norm_act/: one operator per direction, with the glue below) and
'triton' (PyTorch's convolution, then the fused Triton norm+activation: conv_norm_act_triton.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops import _library
from pyi2i.ops._dispatch import select
from pyi2i.ops._layout import check_floating, memory_format
from pyi2i.ops.norm_act import _instance_norm_act_ref

PADDING = 1  # with the 4x4 kernel: stride 2 halves H and W, stride 1 shrinks them by one
EPS = 1e-5  # nn.InstanceNorm2d's default, as in the original release


def _conv_norm_act_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 2,
    upcast: bool = False,
) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` computes in fp32 and returns x's dtype."""
    dtype = x.dtype
    if upcast:
        x, weight = x.float(), weight.float()
        bias = None if bias is None else bias.float()
    y = F.conv2d(x, weight, bias, stride=stride, padding=PADDING)
    return _instance_norm_act_ref(y, act="leaky_relu", eps=EPS).to(dtype)


def conv_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int,
    impl: str = "auto",
) -> torch.Tensor:
    """Convolution (padding 1), instance norm without affine, LeakyReLU(0.2).

    x:      (N, C_in, H, W), NCHW or channels_last; fp32, fp16 or bf16.
    weight: (C_out, C_in, 4, 4) in the PatchGAN (any kernel size works); bias: (C_out,) or None.
    stride: 2 (downsampling layers) or 1 (the last two layers).
    Returns (N, C_out, H_out, W_out) in x's dtype and the convolution's memory format.
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"conv_norm_act expects 4-D x and weight, got {tuple(x.shape)} and {tuple(weight.shape)}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight expects {weight.shape[1]} input channels, x has {x.shape[1]}")
    fn = select("conv_norm_act", impl, x, _conv_norm_act_ref)
    return fn(x, weight, bias, stride)


def fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, backend: str) -> torch.Tensor:
    """conv_norm_act through `backend`'s operators ('cuda'), with the dtypes the reference gives.

    Under autocast the reference's convolution runs in the autocast dtype, so x, weight and bias
    are cast to it here (autocast does not see a custom operator); the output is in x's dtype, as
    the reference returns it, and autograd casts each gradient back to its input's dtype."""
    check_floating("x", x, x.device)
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x_in, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    else:
        x_in = x
    out, _, _, _ = _library.backend_ops(backend).conv_norm_act_fwd(x_in, weight, bias, stride, PADDING, EPS)
    return out.to(x.dtype)


def _conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _fake_fwd(x, weight, bias, stride, padding, eps):
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    shape = (n, c_out, _conv_out_size(h, kh, stride, padding), _conv_out_size(w, kw, stride, padding))
    y = x.new_empty(shape).contiguous(memory_format=memory_format(x))
    stats = x.new_empty(n * c_out, dtype=torch.float32)
    return torch.empty_like(y), y, stats, torch.empty_like(stats)


def _fake_bwd(grad_out, x, weight, y, mean, rstd, stride, padding, has_bias, output_mask):
    return (
        torch.empty_like(x) if output_mask[0] else None,
        torch.empty_like(weight) if output_mask[1] else None,
        weight.new_empty(weight.shape[0]) if output_mask[2] else None,
    )


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, _ = inputs
    _, y, mean, rstd = output
    ctx.save_for_backward(x, weight, y, mean, rstd)
    ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None


def _backward(ctx, grad_out, *_unused_grads):
    x, weight, y, mean, rstd = ctx.saved_tensors
    grad_out = grad_out.contiguous(memory_format=memory_format(y))
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = ctx.ops.conv_norm_act_bwd(grad_out, x, weight, y, mean, rstd, ctx.stride, ctx.padding, ctx.has_bias,
                                      output_mask)
    return (*grads, None, None, None)


# Only the C++ backend fuses the convolution into the operator; the Triton path composes PyTorch's
# convolution with the fused norm, whose glue is instance_norm_act's.
_library.register("conv_norm_act", fake_fwd=_fake_fwd, fake_bwd=_fake_bwd, setup_context=_setup_context,
                  backward=_backward, triton_schemas=None)
