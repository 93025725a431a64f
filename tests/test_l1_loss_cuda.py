"""The 'cuda' backend of l1_loss (C++ on CPU tensors, CUDA on GPU) against the reference."""

from __future__ import annotations

import pytest
import torch

from pyi2i.ops import _cuda_ext, l1_loss

from parity import (DEVICES, EXACT_DTYPE, TOLERANCES, assert_all_match, forward_backward, l1_loss_reference,
                    requires_cuda, to_dtype)

SHAPES = [
    (1, 3, 256, 256),  # an image batch of one
    (2, 3, 31, 29),  # odd sizes: a tail after the vectors
    (1, 1, 1, 1),
    (4, 3, 64, 64),
]
# x's layout, y's layout: equal dense layouts are read in place, mixed ones are made contiguous.
LAYOUTS = [
    ("contiguous", "contiguous"),
    ("channels_last", "channels_last"),
    ("channels_last", "contiguous"),
    ("strided", "contiguous"),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _tensor(shape, layout, dtype, device):
    t = torch.randn(shape, device=device).to(dtype)
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return torch.cat([t, t], dim=-1)[..., ::2]
    return t


def _loss_and_grads(fn, x, y):
    x, y = (t.detach().clone().requires_grad_() for t in (x, y))
    loss = fn(x, y)
    loss.backward()
    return loss.detach(), x.grad, y.grad


def _cuda_l1(x, y):
    return l1_loss(x, y, impl="cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layouts", LAYOUTS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", TOLERANCES["l1_loss"], ids=str)
def test_matches_reference(dtype, shape, layouts, device):
    x, y = (_tensor(shape, layout, dtype, device) for layout in layouts)
    y[..., 1::3] = x[..., 1::3]  # ties, where the gradient of |x - y| is 0; none in a one-element case
    inputs = {"x": x, "y": y}
    grad_out = torch.randn((), device=device)
    exact = forward_backward(l1_loss_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out)
    low = forward_backward(l1_loss_reference, inputs, grad_out)
    got = forward_backward(_cuda_l1, inputs, grad_out)
    assert got["out"].shape == () and got["out"].dtype == dtype
    assert_all_match(got, low, exact, op="l1_loss", dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic(device):
    x, y = (_tensor((4, 3, 128, 128), "contiguous", torch.float32, device) for _ in range(2))
    first = _loss_and_grads(_cuda_l1, x, y)
    second = _loss_and_grads(_cuda_l1, x, y)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x, y = (_tensor((2, 3, 5, 7), "channels_last", torch.float32, device).requires_grad_() for _ in range(2))
    torch.library.opcheck(_cuda_ext.ops().l1_loss_fwd.default, (x, y))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ops, d: ops.l1_loss_fwd(torch.randn(4, device=d).double(), torch.randn(4, device=d).double()), "x must be float32"),
        (lambda ops, d: ops.l1_loss_fwd(torch.randn(4, device=d), torch.randn(4, device=d).half()), "y must have x's dtype"),
        (lambda ops, d: ops.l1_loss_fwd(torch.randn(4, device=d), torch.randn(5, device=d)), "y must have x's shape"),
        (lambda ops, d: ops.l1_loss_fwd(torch.randn(4, 4, device=d), torch.randn(4, 4, device=d).t()), "y must have x's strides"),
        (lambda ops, d: ops.l1_loss_fwd(torch.randn(4, 4, device=d)[:, ::2], torch.randn(4, 2, device=d)), "x must be dense"),
        (lambda ops, d: ops.l1_loss_bwd(torch.ones(3, device=d), torch.randn(4, device=d), torch.randn(4, device=d)), "grad must hold one element"),
    ],
)
def test_bad_arguments_are_named(call, message, device):
    with pytest.raises(RuntimeError, match=message):
        call(_cuda_ext.ops(), device)


@requires_cuda
def test_wrong_device_is_named():
    with pytest.raises(RuntimeError, match="y must be on x's device"):
        _cuda_ext.ops().l1_loss_fwd(torch.randn(4, device="cuda"), torch.randn(4))
