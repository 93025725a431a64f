"""The Triton gan_loss ('lsgan', 'vanilla') against the reference: the loss and its gradient."""

import pytest
import torch

from parity import EXACT_DTYPE, TOLERANCES, assert_all_match, forward_backward, gan_loss_reference, in_layout, to_dtype
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU

pytest.importorskip("triton", reason="the Triton backend needs the triton package (pip install triton)")

from pyi2i import ops  # noqa: E402
from pyi2i.ops import _dispatch  # noqa: E402
from pyi2i.ops import gan_loss_triton as triton_impl  # noqa: E402
from pyi2i.ops.gan_loss import _gan_loss_ref  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

SHAPES = [  # shape, layout
    ((1, 1, 7, 5), "nchw"),
    ((2, 1, 30, 31), "non_contiguous"),
    ((3, 1, 40, 41), "nchw"),  # 4920 elements: more than one program
]


def _logits(shape, layout, dtype, scale=3.0):
    pred = (torch.randn(shape, device=DEVICE) * scale).to(dtype)
    return in_layout(pred, layout)


def _loss_and_grad(fn, pred, target_is_real, mode, grad_out):
    pred = pred.detach().requires_grad_()
    loss = fn(pred, target_is_real, mode)
    (dpred,) = torch.autograd.grad(loss, pred, grad_out.to(loss.dtype))
    return {"loss": loss, "dpred": dpred}


def _reference(upcast):
    return lambda pred, target_is_real, mode: _gan_loss_ref(pred, target_is_real, mode, upcast=upcast)


@pytest.mark.parametrize("dtype", TOLERANCES["gan_loss"], ids=str)
@pytest.mark.parametrize("target_is_real", [True, False])
@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
@pytest.mark.parametrize("shape,layout", SHAPES, ids=str)
def test_matches_reference(shape, layout, mode, target_is_real, dtype):
    inputs = {"pred": _logits(shape, layout, dtype)}
    grad_out = torch.randn((), device=DEVICE)
    options = dict(target_is_real=target_is_real, mode=mode)
    exact = forward_backward(gan_loss_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out, **options)
    low = forward_backward(gan_loss_reference, inputs, grad_out, **options)
    got = forward_backward(ops.gan_loss, inputs, grad_out, **options, impl="triton")
    assert got["out"].shape == () and got["out"].dtype == dtype
    assert_all_match(got, low, exact, op="gan_loss", dtype=dtype)


@pytest.mark.parametrize("target_is_real", [True, False])
def test_vanilla_is_stable_for_large_logits(target_is_real):
    pred = torch.tensor([-1e4, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1e4], device=DEVICE).view(1, 1, 3, 3)
    grad_out = torch.ones((), device=DEVICE)
    got = _loss_and_grad(triton_impl.gan_loss, pred, target_is_real, "vanilla", grad_out)
    expected = _loss_and_grad(_reference(upcast=False), pred.double(), target_is_real, "vanilla", grad_out)
    for name in expected:
        torch.testing.assert_close(got[name].double(), expected[name], msg=name)


def test_deterministic():
    pred = _logits((3, 1, 40, 41), "nchw", torch.float32)
    grad_out = torch.randn((), device=DEVICE)
    first, second = (_loss_and_grad(triton_impl.gan_loss, pred, True, "vanilla", grad_out) for _ in range(2))
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_impl_triton_dispatches_to_triton(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    pred = _logits((1, 1, 7, 5), "nchw", torch.float32)
    assert _dispatch.select("gan_loss", "triton", pred, _gan_loss_ref) is triton_impl.gan_loss
    torch.testing.assert_close(ops.gan_loss(pred, True, "lsgan", impl="triton"), _gan_loss_ref(pred, True, "lsgan"))


def test_custom_ops_pass_opcheck():
    pred = _logits((2, 1, 6, 5), "nchw", torch.float32).requires_grad_()
    torch.library.opcheck(torch.ops.pyi2i.gan_loss_fwd.default, (pred, True, "vanilla"))
    grad = torch.randn((), device=DEVICE)
    torch.library.opcheck(torch.ops.pyi2i.gan_loss_bwd.default, (grad, pred.detach(), False, "lsgan"))


def test_compiles_to_one_graph():
    pred = _logits((2, 1, 6, 5), "nchw", torch.float32)
    grad_out = torch.randn((), device=DEVICE)
    compiled = torch.compile(triton_impl.gan_loss, backend="aot_eager", fullgraph=True)
    got = _loss_and_grad(compiled, pred, False, "vanilla", grad_out)
    expected = _loss_and_grad(triton_impl.gan_loss, pred, False, "vanilla", grad_out)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)
