"""The 'cuda' backend of l1_loss (C++ on CPU tensors, CUDA on GPU) against the reference."""

from __future__ import annotations

import pytest
import torch

from pyi2i.ops import _cuda_ext, l1_loss
from pyi2i.ops.l1_loss import _l1_loss_ref

from parity import DEVICES, assert_error_within, requires_cuda

# dtype -> (exact dtype, atol, rtol) of assert_error_within: the reference run on the inputs cast
# to the exact dtype is the truth, the reference in the input's own dtype sets the bound.
DTYPES = {
    torch.float32: (torch.float64, 1e-6, 1e-6),
    torch.float16: (torch.float32, 1e-3, 1e-3),
    torch.bfloat16: (torch.float32, 8e-3, 8e-3),
}

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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layouts", LAYOUTS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matches_reference(dtype, shape, layouts, device):
    x, y = (_tensor(shape, layout, dtype, device) for layout in layouts)
    y[..., :1] = x[..., :1]  # ties: the gradient of |x - y| at x == y is 0
    exact_dtype, atol, rtol = DTYPES[dtype]
    exact = _loss_and_grads(_l1_loss_ref, x.to(exact_dtype), y.to(exact_dtype))
    reference = _loss_and_grads(_l1_loss_ref, x, y)
    got = _loss_and_grads(lambda a, b: l1_loss(a, b, impl="cuda"), x, y)
    assert got[0].shape == () and got[0].dtype == dtype
    for name, g, r, e in zip(["loss", "x", "y"], got, reference, exact):
        assert_error_within(name, g, r, e, atol=atol, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic(device):
    x, y = (_tensor((4, 3, 128, 128), "contiguous", torch.float32, device) for _ in range(2))
    first = _loss_and_grads(lambda a, b: l1_loss(a, b, impl="cuda"), x, y)
    second = _loss_and_grads(lambda a, b: l1_loss(a, b, impl="cuda"), x, y)
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
