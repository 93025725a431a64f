"""The Triton l1_loss against the reference: the loss and the gradients of both inputs."""

import pytest
import torch

from parity import EXACT_DTYPE, TOLERANCES, assert_all_match, forward_backward, in_layout, l1_loss_reference, to_dtype
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU

pytest.importorskip("triton", reason="the Triton backend needs the triton package (pip install triton)")

from pyi2i import ops  # noqa: E402
from pyi2i.ops import _dispatch  # noqa: E402
from pyi2i.ops import l1_loss_triton as triton_impl  # noqa: E402
from pyi2i.ops.l1_loss import _l1_loss_ref  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

SHAPES = [  # shape, layout of x, layout of y
    ((1, 3, 7, 5), "nchw", "nchw"),
    ((2, 3, 9, 8), "channels_last", "channels_last"),
    ((2, 3, 9, 8), "channels_last", "nchw"),  # y is copied into x's order
    ((2, 3, 33, 31), "non_contiguous", "nchw"),  # 6138 elements: more than one program
]


def _loss_and_grads(fn, x, y, grad_out):
    x, y = x.detach().requires_grad_(), y.detach().requires_grad_()
    loss = fn(x, y)
    dx, dy = torch.autograd.grad(loss, (x, y), grad_out.to(loss.dtype))
    return {"loss": loss, "dx": dx, "dy": dy}


def _triton_l1(x, y):
    return ops.l1_loss(x, y, impl="triton")


@pytest.mark.parametrize("dtype", TOLERANCES["l1_loss"], ids=str)
@pytest.mark.parametrize("shape,x_layout,y_layout", SHAPES, ids=str)
def test_matches_reference(shape, x_layout, y_layout, dtype):
    x, y = torch.randn(shape, device=DEVICE).to(dtype), torch.randn(shape, device=DEVICE).to(dtype)
    y[:, :, 0] = x[:, :, 0]  # equal elements: the gradient's sign is 0 there
    inputs = {"x": in_layout(x, x_layout), "y": in_layout(y, y_layout)}
    grad_out = torch.randn((), device=DEVICE)
    exact = forward_backward(l1_loss_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out)
    low = forward_backward(l1_loss_reference, inputs, grad_out)
    got = forward_backward(_triton_l1, inputs, grad_out)
    assert got["out"].shape == () and got["out"].dtype == dtype
    assert_all_match(got, low, exact, op="l1_loss", dtype=dtype)


def test_gradient_of_one_input_only():
    x = torch.randn(2, 3, 5, 4, device=DEVICE, requires_grad=True)
    y = torch.randn(2, 3, 5, 4, device=DEVICE)
    (dx,) = torch.autograd.grad(triton_impl.l1_loss(x, y), x)
    torch.testing.assert_close(dx, torch.sign(x - y).detach() / x.numel())


def test_deterministic():
    x, y = torch.randn(2, 3, 33, 31, device=DEVICE), torch.randn(2, 3, 33, 31, device=DEVICE)
    grad_out = torch.randn((), device=DEVICE)
    first, second = (_loss_and_grads(triton_impl.l1_loss, x, y, grad_out) for _ in range(2))
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_impl_triton_dispatches_to_triton(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x, y = torch.randn(1, 3, 7, 5, device=DEVICE), torch.randn(1, 3, 7, 5, device=DEVICE)
    assert _dispatch.select("l1_loss", "triton", x, _l1_loss_ref) is triton_impl.l1_loss
    torch.testing.assert_close(ops.l1_loss(x, y, impl="triton"), _l1_loss_ref(x, y))


def test_custom_ops_pass_opcheck():
    x = torch.randn(2, 3, 5, 4, device=DEVICE, requires_grad=True)
    y = torch.randn(2, 3, 5, 4, device=DEVICE).to(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(torch.ops.pyi2i.l1_loss_fwd.default, (x, y))
    torch.library.opcheck(torch.ops.pyi2i.l1_loss_bwd.default, (torch.randn((), device=DEVICE), x.detach(), y.detach()))


def test_compiles_to_one_graph():
    x, y = torch.randn(2, 3, 6, 5, device=DEVICE), torch.randn(2, 3, 6, 5, device=DEVICE)
    grad_out = torch.randn((), device=DEVICE)
    compiled = torch.compile(triton_impl.l1_loss, backend="aot_eager", fullgraph=True)
    got, expected = _loss_and_grads(compiled, x, y, grad_out), _loss_and_grads(triton_impl.l1_loss, x, y, grad_out)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)
