"""The 'cuda' backend of gan_loss (C++ on CPU tensors, CUDA on GPU) against the reference."""

from __future__ import annotations

import pytest
import torch

from pyi2i.ops import _cuda_ext, gan_loss

from parity import (DEVICES, EXACT_DTYPE, TOLERANCES, assert_all_match, forward_backward, gan_loss_reference,
                    requires_cuda, to_dtype)

SHAPES = [
    (1, 1, 30, 30),  # the 70x70 PatchGAN's map on 256x256 images
    (4, 1, 31, 29),  # odd sizes: a tail after the vectors
    (1, 1, 1, 1),
    (2, 3, 64, 64),  # several blocks of partial sums
    (8, 1, 256, 300),  # the maximum number of partial sums
]
LAYOUTS = ["contiguous", "channels_last", "strided"]
MODES = ["lsgan", "vanilla"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _pred(shape, layout, dtype, device, scale=2.0):
    # logits of a few units: beyond that the low-precision reference rounds sigmoid(pred) - target to noise
    pred = (torch.randn(shape, device=device) * scale).to(dtype)
    if layout == "channels_last":
        return pred.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return torch.cat([pred, pred], dim=-1)[..., ::2]
    return pred


def _loss_and_grad(fn, pred):
    pred = pred.detach().clone().requires_grad_()
    loss = fn(pred)
    loss.backward()
    return loss.detach(), pred.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("target_is_real", [True, False])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", TOLERANCES["gan_loss"], ids=str)
def test_matches_reference(dtype, shape, layout, mode, target_is_real, device):
    inputs = {"pred": _pred(shape, layout, dtype, device)}
    grad_out = torch.randn((), device=device)
    exact = forward_backward(gan_loss_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out,
                             target_is_real=target_is_real, mode=mode)
    low = forward_backward(gan_loss_reference, inputs, grad_out, target_is_real=target_is_real, mode=mode)
    got = forward_backward(gan_loss, inputs, grad_out, target_is_real=target_is_real, mode=mode, impl="cuda")
    assert got["out"].shape == () and got["out"].dtype == dtype
    assert got["dpred"].stride() == inputs["pred"].stride() or not inputs["pred"].is_contiguous()
    assert_all_match(got, low, exact, op="gan_loss", dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("target_is_real", [True, False])
def test_vanilla_is_stable_for_large_logits(target_is_real, device):
    pred = torch.tensor([[-200.0, -50.0, 0.0, 50.0, 200.0]], device=device)
    got = _loss_and_grad(lambda p: gan_loss(p, target_is_real, "vanilla", impl="cuda"), pred)
    expected = _loss_and_grad(lambda p: gan_loss_reference(p, target_is_real, "vanilla"), pred.double())
    for g, e in zip(got, expected):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), e, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", MODES)
def test_deterministic(mode, device):
    pred = _pred((8, 1, 256, 300), "contiguous", torch.float32, device)
    first = _loss_and_grad(lambda p: gan_loss(p, True, mode, impl="cuda"), pred)
    second = _loss_and_grad(lambda p: gan_loss(p, True, mode, impl="cuda"), pred)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    pred = _pred((2, 1, 7, 9), "channels_last", torch.float32, device).requires_grad_()
    torch.library.opcheck(_cuda_ext.ops().gan_loss_fwd.default, (pred, True, "vanilla"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ops, d: ops.gan_loss_fwd(torch.randn(4, device=d, dtype=torch.float64), True, "lsgan"), "pred must be float32"),
        (lambda ops, d: ops.gan_loss_fwd(torch.randn(4, 4, device=d)[:, ::2], True, "lsgan"), "pred must be dense"),
        (lambda ops, d: ops.gan_loss_fwd(torch.randn(4, device=d), True, "wgangp"), "mode must be 'lsgan' or 'vanilla'"),
        (lambda ops, d: ops.gan_loss_bwd(torch.ones(2, device=d), torch.randn(4, device=d), True, "lsgan"), "grad must hold one element"),
        (lambda ops, d: ops.gan_loss_bwd(torch.ones((), device=d).half(), torch.randn(4, device=d), True, "lsgan"), "grad must be float32"),
    ],
)
def test_bad_arguments_are_named(call, message, device):
    with pytest.raises(RuntimeError, match=message):
        call(_cuda_ext.ops(), device)


@requires_cuda
def test_wrong_device_is_named():
    with pytest.raises(RuntimeError, match="grad must be on pred's device"):
        _cuda_ext.ops().gan_loss_bwd(torch.ones(()), torch.randn(4, device="cuda"), True, "lsgan")
