"""Shared pieces of the backend parity tests: the error rule and its tolerance table, the plain
PyTorch references, the devices, the Triton interpreter switch.

The error rule (flash-attention's criterion, with a slack relative to the compared tensor):

    max|got - exact| <= ERROR_RATIO * max|low - exact| + rtol[op][dtype] * max|exact|

- exact: the reference run in a wider dtype (EXACT_DTYPE: fp64 for fp32 inputs, fp32 for fp16/bf16);
- low:   the same reference run in the inputs' own dtype, so that the bound follows what PyTorch
         itself achieves in that precision for that op;
- rtol:  from TOLERANCES, per op and per dtype (kept apart from the shapes, as Liger-Kernel does),
         a fraction of the largest exact value of *this* tensor. There is no floor: a gradient whose
         elements are all about 1/N is judged at the scale of 1/N, so a zeroed, halved or
         sign-flipped gradient always fails (see tests/test_parity.py, which checks that it does).

A comparison refuses to run when the exact value is all zero (a zeroed result would pass it) or
when its bound is so wide that a halved result would pass.

Typical use, for an op `ops.<op>(..., impl=backend)` with tensor inputs in `inputs`:

    exact = forward_backward(reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out)
    low = forward_backward(reference, inputs, grad_out)
    got = forward_backward(lambda **t: ops.<op>(**t, impl=backend), inputs, grad_out)
    assert_all_match(got, low, exact, op="<op>", dtype=dtype)
"""

from __future__ import annotations

from typing import Callable, Mapping

import pytest
import torch
import torch.nn.functional as F

HAS_CUDA = torch.cuda.is_available()

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")

# Backends with a CPU and a CUDA path run on both; the CUDA cases are skipped on machines without one.
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]

# How many times the reference's own low-precision error a backend may make.
ERROR_RATIO = 2.0

# The dtype the exact result is computed in, for each input dtype.
EXACT_DTYPE = {torch.float32: torch.float64, torch.float16: torch.float32, torch.bfloat16: torch.float32}

# rtol of the error rule, per op and input dtype: the slack on top of twice the reference's own error,
# as a fraction of the largest exact value of the compared tensor. It covers a backend that rounds
# differently from PyTorch (an fp32 accumulator where PyTorch reduces in the input's dtype, or the
# reverse), a few units in the last place of the dtype.
TOLERANCES: dict[str, dict[torch.dtype, float]] = {
    "l1_loss": {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2},
    "gan_loss": {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2},
    "instance_norm_act": {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2},
    "conv_norm_act": {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2},
    # whole networks: many layers of rounding in fp32
    "network": {torch.float32: 1e-5},
}

# A comparison whose bound reaches this fraction of the compared magnitude could not tell a halved
# result from the true one: it is refused as a test that cannot fail.
MAX_BOUND_FRACTION = 0.25


def max_error(result: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest absolute difference, computed in fp64 so that the subtraction itself is exact."""
    return (result.double() - expected.double()).abs().max().item()


def parity_error(
    name: str,
    got: torch.Tensor | None,
    low: torch.Tensor | None,
    exact: torch.Tensor | None,
    *,
    rtol: float,
    scale: float | None = None,
) -> str | None:
    """Why `got` fails the error rule against `exact`, or None when it passes.

    got:   the result under test (any dtype, shape of exact);
    low:   the reference's result in got's dtype; exact: the reference's result in a wider dtype;
    rtol:  the slack as a fraction of `scale`, which defaults to max|exact| (pass another only when
           this tensor is zero by construction and a neighbour sets the magnitude, as for a conv bias
           before an instance norm).
    None stands for a gradient that is not computed: then all three must be None.
    Raises ValueError when the comparison could not fail (an all-zero exact value, or a bound too wide).
    """
    if exact is None or got is None or low is None:
        if got is None and low is None and exact is None:
            return None
        return (f"{name}: present in got={got is not None}, reference={low is not None}, "
                f"exact={exact is not None}")
    if got.shape != exact.shape:
        return f"{name}: shape {tuple(got.shape)}, expected {tuple(exact.shape)}"
    if scale is None:
        scale = exact.abs().max().item()
    if scale == 0.0:
        raise ValueError(f"{name}: the exact value is all zero, so a zeroed result would pass; "
                         "choose inputs with a non-zero true value")
    err = max_error(got, exact)
    ref_err = max_error(low, exact)
    bound = ERROR_RATIO * ref_err + rtol * scale
    if bound >= MAX_BOUND_FRACTION * scale:
        raise ValueError(f"{name}: bound {bound:.3g} is {bound / scale:.2g} of the magnitude {scale:.3g} "
                         f"(the reference's own error is {ref_err:.3g}): this comparison cannot fail")
    if err <= bound:
        return None
    return (f"{name} ({got.dtype}): error {err:.3g} exceeds {bound:.3g} = {ERROR_RATIO:g} x the reference's "
            f"own {ref_err:.3g} + rtol {rtol:.3g} x max|exact| {scale:.3g}")


def assert_matches(name: str, got, low, exact, *, op: str, dtype: torch.dtype, scale: float | None = None) -> None:
    """Assert the error rule for one tensor, with the rtol of TOLERANCES[op][dtype]."""
    message = parity_error(name, got, low, exact, rtol=TOLERANCES[op][dtype], scale=scale)
    assert message is None, message


def assert_all_match(got: Mapping, low: Mapping, exact: Mapping, *, op: str, dtype: torch.dtype) -> None:
    """assert_matches for every entry of three results of forward_backward (same keys)."""
    assert got.keys() == exact.keys() == low.keys(), f"results differ in keys: {got.keys()} vs {exact.keys()}"
    for name in exact:
        assert_matches(name, got[name], low[name], exact[name], op=op, dtype=dtype)


def to_dtype(tensors: Mapping[str, torch.Tensor | None], dtype: torch.dtype) -> dict:
    """The tensors cast to dtype (None stays None), with their memory layout."""
    return {k: None if t is None else t.to(dtype) for k, t in tensors.items()}


def forward_backward(fn: Callable, inputs: Mapping[str, torch.Tensor | None], grad_out: torch.Tensor,
                     **kwargs) -> dict[str, torch.Tensor | None]:
    """{'out': fn(**inputs, **kwargs), 'd<name>': gradient of <out, grad_out> for each tensor input}.

    Each tensor input is detached and made a leaf that requires a gradient; None inputs are passed as
    None and have no gradient entry. grad_out is cast to the output's dtype.
    """
    leaves = {k: None if t is None else t.detach().requires_grad_() for k, t in inputs.items()}
    out = fn(**leaves, **kwargs)
    wanted = {k: t for k, t in leaves.items() if t is not None}
    grads = torch.autograd.grad(out, list(wanted.values()), grad_out.to(out.dtype), allow_unused=True)
    return {"out": out.detach(), **{f"d{k}": g for k, g in zip(wanted, grads)}}


# The references: the plain PyTorch expression of each op, never the code under test. Computed in
# the inputs' dtype.

def l1_loss_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(x, y)


def gan_loss_reference(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"no fused backend for gan mode {mode!r}")


def activation_reference(y: torch.Tensor, act: str) -> torch.Tensor:
    return {"none": lambda: y, "relu": lambda: F.relu(y), "leaky_relu": lambda: F.leaky_relu(y, 0.2)}[act]()


def instance_norm_act_reference(x, weight=None, bias=None, residual=None, act="none", eps=1e-5):
    """residual + act(instance_norm(x) * weight + bias), as group norm with one group per channel
    (the same computation; F.instance_norm refuses 1x1 planes). On NCHW copies: PyTorch's CPU
    instance-norm backward mis-computes some channels_last cases, and the math has no layout."""
    y = F.group_norm(x.contiguous(), x.shape[1], weight, bias, eps)
    y = activation_reference(y, act)
    return y if residual is None else residual.contiguous() + y


def conv_norm_act_reference(x, weight, bias=None, stride=2):
    """leaky_relu(instance_norm(conv2d(x, weight, bias, stride, padding=1)), 0.2), norm without affine."""
    y = F.conv2d(x.contiguous(), weight, bias, stride=stride, padding=1)
    return instance_norm_act_reference(y, act="leaky_relu")


def in_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """t in a memory layout the kernels must handle: 'nchw' (t as it is), 'channels_last', or
    'non_contiguous' (H and W swapped in memory: neither NCHW nor NHWC)."""
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "non_contiguous":
        return t.transpose(2, 3).contiguous().transpose(2, 3)
    if layout == "nchw":
        return t
    raise ValueError(f"unknown layout {layout!r}")


@pytest.fixture(autouse=True)
def interpret_triton_on_cpu(monkeypatch):
    """Without a CUDA device, run Triton kernels in its CPU interpreter (TRITON_INTERPRET=1).

    Autouse in every test module that imports it (``from parity import interpret_triton_on_cpu``),
    and nowhere else. Set per test, not for the process: under TRITON_INTERPRET=1 impl='auto' picks
    Triton on CPU in every other test too. Triton reads it when the kernels are first defined, at
    first launch.
    """
    if not HAS_CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
