"""Every fused op takes what autocast feeds it, in every backend.

Under autocast the networks' outputs are bf16 (or fp16) while the images from the data loader stay
fp32, and the norms' parameters stay fp32 while their inputs are low precision. Each case runs an op
through one backend, under `torch.autocast("cpu", torch.bfloat16)` as the training step does or with
explicitly mixed dtypes, and compares the output and every gradient with autograd over the plain
PyTorch expression under the same autocast state: the same dtypes, and values within a tolerance
relative to the reference tensor's own magnitude. The 'cuda' backend runs its C++ CPU kernels here,
the 'triton' backend Triton's CPU interpreter.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU
from pyi2i import ops

BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
BACKENDS = [
    "ref",
    "cuda",
    pytest.param("triton", marks=pytest.mark.skipif(
        not __import__("importlib.util").util.find_spec("triton"), reason="the Triton backend needs triton")),
]
# Largest error allowed, as a fraction of the largest magnitude in the reference tensor. The lowest
# precision among a case's dtypes sets it: a few units of its rounding, since the fused kernels and
# PyTorch round in different places (bf16 keeps 8 bits, fp16 11).
RTOL = {BF16: 2e-2, FP16: 4e-3, FP32: 1e-5}
CONTEXTS = ["autocast", "plain"]


def _context(name: str):
    return torch.autocast("cpu", torch.bfloat16) if name == "autocast" else contextlib.nullcontext()


def _leaves(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if t is None else t.detach().clone().requires_grad_() for t in tensors]


def _run(fn, inputs: list[torch.Tensor | None], context: str, grad_out_seed: int = 1):
    """fn(*inputs) under `context`, and the gradients of a random weighting of its output with
    respect to every input (None where an input is None)."""
    with _context(context):
        out = fn(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_out_seed)).to(out.dtype)
    present = [t for t in inputs if t is not None]
    grads = iter(torch.autograd.grad((out * weights).sum(), present))
    return out, [None if t is None else next(grads) for t in inputs]


def _assert_close(name: str, got: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype}, the reference gives {expected.dtype}"
    assert got.shape == expected.shape, f"{name}: shape {tuple(got.shape)}, the reference gives {tuple(expected.shape)}"
    scale = expected.double().abs().max().item()
    assert scale > 0, f"{name}: the reference is all zeros, so this case could not see a wrong result"
    err = (got.double() - expected.double()).abs().max().item()
    assert err <= rtol * scale, f"{name}: max error {err:.3g} exceeds {rtol:g} x the reference's magnitude {scale:.3g}"


def _check(fused, reference, inputs, context: str, names: list[str | None]) -> None:
    """Compares output and gradients; `names` names each input's gradient, None to leave it out."""
    rtol = max(RTOL[t.dtype] for t in inputs if t is not None)
    if context == "autocast":
        rtol = max(rtol, RTOL[BF16])
    got, got_grads = _run(fused, _leaves(*inputs), context)
    expected, expected_grads = _run(reference, _leaves(*inputs), context)
    _assert_close("output", got, expected, rtol)
    for name, g, e in zip(names, got_grads, expected_grads):
        if name is not None:
            _assert_close(f"grad of {name}", g, e, rtol)


def test_the_mixed_dtype_example_gives_the_references_value_and_gradients():
    # a generator's bf16 output against an fp32 image from the data loader, no autocast
    x = torch.randn(2, 3, 16, 16).tanh().bfloat16()
    y = torch.rand(2, 3, 16, 16) * 2 - 1
    for backend in ("cuda", "triton"):
        _check(lambda a, b, impl=backend: ops.l1_loss(a, b, impl=impl), F.l1_loss, [x, y], "plain", ["x", "y"])


L1_DTYPES = [(BF16, FP32), (FP32, BF16), (FP16, FP32), (FP32, FP16), (BF16, BF16)]


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("dtypes", L1_DTYPES, ids=lambda d: f"{d[0]}-{d[1]}".replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_l1_loss(backend, dtypes, context):
    x = torch.randn(2, 3, 6, 5).to(dtypes[0])
    y = torch.randn(2, 3, 6, 5).to(dtypes[1])
    _check(lambda a, b: ops.l1_loss(a, b, impl=backend), F.l1_loss, [x, y], context, ["x", "y"])


def _gan_reference(pred, target_is_real, mode):
    target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("dtype", [BF16, FP16, FP32], ids=str)
@pytest.mark.parametrize("target_is_real", [True, False], ids=["real", "fake"])
@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gan_loss(backend, mode, target_is_real, dtype, context):
    pred = (torch.randn(2, 1, 5, 6) * 2).to(dtype)
    _check(lambda p: ops.gan_loss(p, target_is_real, mode, impl=backend),
           lambda p: _gan_reference(p, target_is_real, mode), [pred], context, ["pred"])


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

    _check(fused, _instance_norm_act_reference, [x, weight, bias, residual], context,
           ["x", "weight", "bias", "residual"])


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
    _check(lambda x, w, b: ops.conv_norm_act(x, w, b, stride=2, impl=backend), _conv_norm_act_reference,
           [x, weight, bias], context, ["x", "weight", None])
