"""Instance normalisation fused with an activation and an optional residual add.

    out = residual + act(instance_norm(x) * weight + bias)

The building block of every pyi2i network with `--norm instance`: the ResNet generator's
norm+ReLU and its residual blocks' norm+add, the PatchGAN's norm+LeakyReLU(0.2).

The fused backends ('triton' in pyi2i/ops/instance_norm_act_triton.py, 'cuda' in
csrc/instance_norm_act/) share the glue below: the operators
`instance_norm_act_fwd(x, weight, bias, residual, act, eps) -> (out, mean, rstd)` (out like x, the
statistics (N * C,) fp32) and `instance_norm_act_bwd(grad_out, x, weight, bias, mean, rstd, act)
-> (grad_x, grad_weight, grad_bias)` (grad_x like x, the others (C,) fp32), their fake kernels and
autograd formula (see _library).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pyi2i.ops import _library
from pyi2i.ops._dispatch import select
from pyi2i.ops._layout import check_floating, memory_format

ACTIVATIONS = ("none", "relu", "leaky_relu")
LEAKY_RELU_SLOPE = 0.2  # the only slope the pix2pix/CycleGAN networks use
FWD_SCHEMA = ("(Tensor x, Tensor? weight, Tensor? bias, Tensor? residual, str act, float eps)"
              " -> (Tensor out, Tensor mean, Tensor rstd)")
BWD_SCHEMA = ("(Tensor grad_out, Tensor x, Tensor? weight, Tensor? bias, Tensor mean, Tensor rstd, str act)"
              " -> (Tensor grad_x, Tensor grad_weight, Tensor grad_bias)")


def activation(x: torch.Tensor, act: str) -> torch.Tensor:
    """The activation named `act` (one of ACTIVATIONS) applied to x."""
    if act == "relu":
        return F.relu(x)
    if act == "leaky_relu":
        return F.leaky_relu(x, LEAKY_RELU_SLOPE)
    if act == "none":
        return x
    raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")


def _instance_norm_act_ref(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                           residual: torch.Tensor | None = None, act: str = "none", eps: float = 1e-5,
                           upcast: bool = False) -> torch.Tensor:
    """The specification, in plain PyTorch. `upcast` computes in fp32 and returns x's dtype."""
    dtype = x.dtype
    if upcast:
        x = x.float()
        residual = None if residual is None else residual.float()
    y = F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    if y.requires_grad and x.device.type == "cpu" and x.shape[0] == 1:
        # PyTorch's CPU instance-norm backward gives wrong input gradients at N = 1 when the incoming
        # gradient is channels_last (whatever x's layout); an NCHW gradient gives the right ones.
        y.register_hook(lambda grad: grad.contiguous())
    y = activation(y, act)
    if residual is not None:
        y = residual + y
    return y.to(dtype)


def instance_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    residual: torch.Tensor | None = None,
    act: str = "none",
    eps: float = 1e-5,
    impl: str = "auto",
) -> torch.Tensor:
    """Per-(sample, channel) normalisation over H x W, then `act`, then `+ residual`.

    x:        (N, C, H, W), NCHW or channels_last; fp32, fp16 or bf16 (statistics in fp32).
    weight:   (C,) or None; bias: (C,) or None (affine instance norm).
    residual: like x, or None.
    act:      'none' | 'relu' | 'leaky_relu' (slope 0.2).
    Returns a tensor like x, in x's memory format.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
    if x.dim() != 4:
        raise ValueError(f"instance_norm_act expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} does not match x shape {tuple(x.shape)}")
    fn = select("instance_norm_act", impl, x, _instance_norm_act_ref)
    return fn(x, weight, bias, residual, act, eps)


def _check_inputs(x, weight, bias, residual, act) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    check_floating("x", x, x.device)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            check_floating(name, p, x.device)
            if p.shape != x.shape[1:2]:
                raise ValueError(f"{name} must be ({x.shape[1]},), got shape {tuple(p.shape)}")
    if residual is not None:
        check_floating("residual", residual, x.device)
        if residual.shape != x.shape:
            raise ValueError(f"residual shape {tuple(residual.shape)} does not match x shape {tuple(x.shape)}")
    if x.shape[1:].numel() >= 2**31:  # offsets within a sample are 32-bit
        raise ValueError(f"one sample of x must hold fewer than 2**31 elements, got shape {tuple(x.shape)}")


def _param(p: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """An affine parameter as the kernels read it: fp32 or x's dtype (autocast leaves parameters in
    fp32 while x is bf16 or fp16: read as they are); any other mix is cast to fp32, a (C,) tensor."""
    return p if p is None or p.dtype in (torch.float32, dtype) else p.float()


def fused(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    act: str,
    eps: float,
    backend: str,
) -> torch.Tensor:
    """instance_norm_act through `backend`'s operators, with the dtypes the reference gives: the
    output in x's dtype and memory format (NCHW unless x is channels_last), each gradient in its
    input's dtype. A residual of another dtype is cast to x's in the same pass that lays it out
    like x: the reference's sum is rounded to x's dtype anyway."""
    _check_inputs(x, weight, bias, residual, act)
    fmt = memory_format(x)
    x = x.contiguous(memory_format=fmt)
    if residual is not None and (residual.dtype != x.dtype or not residual.is_contiguous(memory_format=fmt)):
        residual = torch.empty_like(x).copy_(residual)  # one pass: cast and lay out like x
    out, _, _ = _library.backend_ops(backend).instance_norm_act_fwd(
        x, _param(weight, x.dtype), _param(bias, x.dtype), residual, act, eps)
    return out


def _fake_fwd(x, weight, bias, residual, act, eps):
    stats = x.new_empty(x.shape[0] * x.shape[1], dtype=torch.float32)
    return torch.empty_like(x, memory_format=memory_format(x)), stats, torch.empty_like(stats)


def _fake_bwd(grad_out, x, weight, bias, mean, rstd, act):
    params = x.new_empty(x.shape[1], dtype=torch.float32)
    return torch.empty_like(x, memory_format=memory_format(x)), params, torch.empty_like(params)


def _setup_context(ctx, inputs, output):
    x, weight, bias, residual, act, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.act = act
    ctx.has_residual = residual is not None
    ctx.mark_non_differentiable(mean, rstd)


def _backward(ctx, grad_out, _grad_mean, _grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    grad_out = grad_out.contiguous(memory_format=memory_format(x))
    grad_x, grad_weight, grad_bias = ctx.ops.instance_norm_act_bwd(grad_out, x, weight, bias, mean, rstd, ctx.act)
    return (
        grad_x if ctx.needs_input_grad[0] else None,
        grad_weight.to(weight.dtype) if ctx.needs_input_grad[1] else None,
        grad_bias.to(bias.dtype) if ctx.needs_input_grad[2] else None,
        grad_out if ctx.has_residual and ctx.needs_input_grad[3] else None,
        None,
        None,
    )


_library.register("instance_norm_act", fake_fwd=_fake_fwd, fake_bwd=_fake_bwd, setup_context=_setup_context,
                  backward=_backward, triton_schemas=(FWD_SCHEMA, BWD_SCHEMA))
