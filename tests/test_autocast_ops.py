"""Every fused op takes what autocast feeds it, in every backend.

Under autocast the networks' outputs are bf16 (or fp16) while the images from the data loader stay
fp32, and the norms' parameters stay fp32 while their inputs are low precision. Each case runs an op
through one backend, under `torch.autocast("cpu", torch.bfloat16)` as the training step does or with
explicitly mixed dtypes, and checks the output and every gradient against autograd over the plain
PyTorch expression:

- dtypes: those the expression gives under the same autocast state;
- values: parity's error rule (tests/parity.py), against the expression run in fp64 without
  autocast, allowing twice the error the expression itself makes under the same autocast state plus
  the op's tolerance for the lowest precision in play, relative to the compared tensor's magnitude.

The 'cuda' backend runs its C++ CPU kernels here, the 'triton' backend Triton's CPU interpreter.
"""

from __future__ import annotations

import contextlib
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from parity import assert_matches, forward_backward, gan_loss_reference, l1_loss_reference, to_dtype
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU
from pyi2i import ops

BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
BACKENDS = [
    "ref",
    "cuda",
    pytest.param("triton", marks=pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                                    reason="the Triton backend needs the triton package")),
]
CONTEXTS = ["autocast", "plain"]
PRECISION = [FP32, FP16, BF16]  # from the widest to the narrowest


def _context(name: str):
    return torch.autocast("cpu", torch.bfloat16) if name == "autocast" else contextlib.nullcontext()


def _check(op: str, fused, reference, inputs: dict, context: str, skip: tuple[str, ...] = ()) -> None:
    """Compares the output and the gradient of every tensor input (but those named in `skip`)."""
    grad_out = torch.randn(reference(**to_dtype(inputs, torch.float64)).shape, dtype=torch.float64)
    with _context(context):
        got = forward_backward(fused, inputs, grad_out)
        low = forward_backward(reference, inputs, grad_out)
    exact = forward_backward(reference, to_dtype(inputs, torch.float64), grad_out)
    dtypes = [t.dtype for t in inputs.values() if t is not None] + ([BF16] if context == "autocast" else [])
    narrowest = max(dtypes, key=PRECISION.index)
    for name in exact:
        if name.removeprefix("d") in skip:
            continue
        assert got[name].dtype == low[name].dtype, (
            f"{name}: dtype {got[name].dtype}, the reference gives {low[name].dtype}")
        assert_matches(name, got[name], low[name], exact[name], op=op, dtype=narrowest)


def test_the_mixed_dtype_example_gives_the_references_value_and_gradients():
    # a generator's bf16 output against an fp32 image from the data loader, no autocast
    x = torch.randn(2, 3, 16, 16).tanh().bfloat16()
    y = torch.rand(2, 3, 16, 16) * 2 - 1
    for backend in ("cuda", "triton"):
        _check("l1_loss", lambda x, y, impl=backend: ops.l1_loss(x, y, impl=impl), l1_loss_reference,
               dict(x=x, y=y), "plain")


L1_DTYPES = [(BF16, FP32), (FP32, BF16), (FP16, FP32), (FP32, FP16), (BF16, BF16)]


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("dtypes", L1_DTYPES, ids=lambda d: f"{d[0]}-{d[1]}".replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_l1_loss(backend, dtypes, context):
    x = torch.randn(2, 3, 6, 5).to(dtypes[0])
    y = torch.randn(2, 3, 6, 5).to(dtypes[1])
    _check("l1_loss", lambda x, y: ops.l1_loss(x, y, impl=backend), l1_loss_reference, dict(x=x, y=y), context)


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("dtype", [BF16, FP16, FP32], ids=str)
@pytest.mark.parametrize("target_is_real", [True, False], ids=["real", "fake"])
@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gan_loss(backend, mode, target_is_real, dtype, context):
    pred = (torch.randn(2, 1, 5, 6) * 2).to(dtype)
    _check("gan_loss", lambda pred: ops.gan_loss(pred, target_is_real, mode, impl=backend),
           lambda pred: gan_loss_reference(pred, target_is_real, mode), dict(pred=pred), context)


# (x's dtype, the dtype of the affine parameters and of the residual): autocast keeps parameters
# in fp32 under a low-precision x, and a residual may come from either side of a cast.
NORM_DTYPES = [(BF16, FP32), (FP16, FP32), (BF16, BF16), (FP32, FP32)]


def _instance_norm_act_reference(x, weight, bias, residual):
    out = F.leaky_relu(F.instance_norm(x, weight=weight, bias=bias, eps=1e-5), 0.2)
    return (residual + out).to(x.dtype)


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("dtypes", NORM_DTYPES, ids=lambda d: f"{d[0]}-{d[1]}".replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_instance_norm_act(backend, dtypes, context):
    x_dtype, other = dtypes
    x = (torch.randn(2, 3, 5, 4) * 3 + 1).to(x_dtype)
    weight, bias = (torch.rand(3) + 0.5).to(other), torch.randn(3).to(other)
    residual = torch.randn(2, 3, 5, 4).to(other)

    def fused(x, weight, bias, residual):
        return ops.instance_norm_act(x, weight, bias, residual=residual, act="leaky_relu", impl=backend)

    _check("instance_norm_act", fused, _instance_norm_act_reference,
           dict(x=x, weight=weight, bias=bias, residual=residual), context)


# Outside autocast the reference's convolution needs one dtype; under it, any mix.
CONV_CASES = [("autocast", FP32, FP32), ("autocast", BF16, FP32), ("autocast", FP16, FP32),
              ("autocast", BF16, BF16), ("plain", BF16, BF16), ("plain", FP32, FP32)]


def _conv_norm_act_reference(x, weight, bias):
    y = F.conv2d(x, weight, bias, stride=2, padding=1)
    return F.leaky_relu(F.instance_norm(y, eps=1e-5), 0.2).to(x.dtype)


@pytest.mark.parametrize("context, x_dtype, weight_dtype", CONV_CASES,
                         ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_norm_act(backend, context, x_dtype, weight_dtype):
    x = torch.randn(2, 3, 8, 10).to(x_dtype)
    weight, bias = (torch.randn(4, 3, 4, 4) * 0.2).to(weight_dtype), torch.randn(4).to(weight_dtype)
    # The bias is a per-channel constant that the norm subtracts again: its true gradient is 0, and
    # what either side computes for it is rounding noise, so it is not compared.
    _check("conv_norm_act", lambda x, weight, bias: ops.conv_norm_act(x, weight, bias, stride=2, impl=backend),
           _conv_norm_act_reference, dict(x=x, weight=weight, bias=bias), context, skip=("bias",))
