"""conv_norm_act, the PatchGAN block: the 'cuda' backend (C++ on CPU tensors, CUDA on GPU) against
the reference block conv2d -> instance norm -> LeakyReLU(0.2)."""

from __future__ import annotations

import pytest
import torch

from pyi2i.ops import _cuda_ext, conv_norm_act

from parity import (DEVICES, EXACT_DTYPE, TOLERANCES, assert_all_match, assert_matches, conv_norm_act_reference,
                    forward_backward, to_dtype)

CASES = [  # (x shape, output channels, stride)
    ((1, 3, 16, 16), 8, 2),  # N = 1, the first layer's 3 input channels
    ((2, 8, 15, 13), 16, 2),  # odd H x W
    ((2, 16, 8, 8), 32, 1),  # stride 1: H and W shrink by one
    ((1, 4, 34, 34), 1, 1),  # one output channel
]
LAYOUTS = ["nchw", "channels_last"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _inputs(case, layout, with_bias, dtype, device):
    shape, c_out, _ = case
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=memory_format)
    weight = (torch.randn(c_out, shape[1], 4, 4, device=device) * 0.2).to(dtype)
    bias = torch.randn(c_out, device=device).to(dtype) if with_bias else None
    return x, weight, bias


def _run(fn, tensors, grad_out):
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out.detach()] + [None if t is None else t.grad for t in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", TOLERANCES["conv_norm_act"], ids=str)
def test_matches_reference_block(dtype, case, layout, with_bias, device):
    inputs = dict(zip(["x", "weight", "bias"], _inputs(case, layout, with_bias, dtype, device)))
    stride = case[2]
    expected_shape = conv_norm_act_reference(**inputs, stride=stride).shape
    grad_out = torch.randn(expected_shape, device=device)
    exact = forward_backward(conv_norm_act_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out, stride=stride)
    low = forward_backward(conv_norm_act_reference, inputs, grad_out, stride=stride)
    got = forward_backward(conv_norm_act, inputs, grad_out, stride=stride, impl="cuda")
    assert got["out"].shape == expected_shape and got["out"].dtype == dtype
    if with_bias:  # a bias before an instance norm cancels: its exact gradient is rounding noise around 0
        for result in (exact, low, got):
            assert result.pop("dbias").abs().max() <= 1e-2 * result["dweight"].abs().max()
    assert_all_match(got, low, exact, op="conv_norm_act", dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_keeps_conv_output_not_norm_output(device):
    x, weight, bias = (t.requires_grad_() for t in _inputs(CASES[1], "nchw", True, torch.float32, device))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = conv_norm_act(x, weight, bias, stride=2, impl="cuda")
    rows = out.shape[0] * out.shape[1]
    assert sorted(tuple(t.shape) for t in saved) == sorted([x.shape, weight.shape, out.shape, (rows,), (rows,)])
    assert all(t.data_ptr() != out.data_ptr() for t in saved)


@pytest.mark.parametrize("device", DEVICES)
def test_only_requested_gradients(device):
    x, weight, bias = _inputs(CASES[0], "nchw", True, torch.float32, device)
    grad_out = torch.randn(conv_norm_act_reference(x, weight, bias).shape, device=device)
    inputs = {"x": x, "weight": weight, "bias": bias}
    exact = forward_backward(conv_norm_act_reference, to_dtype(inputs, torch.float64), grad_out, stride=2)
    low = forward_backward(conv_norm_act_reference, inputs, grad_out, stride=2)
    weight.requires_grad_()
    conv_norm_act(x, weight, bias, stride=2, impl="cuda").backward(grad_out)
    assert x.grad is None and bias.grad is None
    assert_matches("weight", weight.grad, low["dweight"], exact["dweight"], op="conv_norm_act", dtype=torch.float32)


def test_autocast_runs_the_convolution_in_low_precision():
    x, weight, bias = _inputs(CASES[1], "nchw", True, torch.float32, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv_norm_act(x, weight, bias, stride=2, impl="cuda")
        expected = conv_norm_act(x, weight, bias, stride=2, impl="ref")
    assert got.dtype == expected.dtype == torch.float32  # the reference returns x's dtype
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_raises(device):
    """A gradient penalty differentiates D's gradient: the backend must refuse, not drop terms."""
    x, weight, bias = (t.requires_grad_() for t in _inputs(CASES[1], "nchw", True, torch.float32, device))
    (grad_x,) = torch.autograd.grad(conv_norm_act(x, weight, bias, stride=2, impl="cuda").sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no double backward"):
        grad_x.square().sum().backward()


@pytest.mark.parametrize("device", DEVICES)
def test_compiles_to_a_single_op(device):
    x, weight, bias = (t.requires_grad_() for t in _inputs(CASES[1], "nchw", True, torch.float32, device))
    fn = lambda *t: conv_norm_act(*t, stride=2, impl="cuda")  # noqa: E731
    fn(x, weight, bias)  # builds and loads the extension outside tracing
    explain = torch._dynamo.explain(fn)(x, weight, bias)
    assert explain.graph_break_count == 0
    targets = [str(n.target) for n in explain.graphs[0].graph.nodes if n.op == "call_function"]
    assert targets.count("pyi2i_C.conv_norm_act_fwd") == 1
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    grad_out = torch.randn_like(fn(x, weight, bias))
    torch.testing.assert_close(_run(compiled, [x, weight, bias], grad_out), _run(fn, [x, weight, bias], grad_out))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x, weight, bias = (t.requires_grad_() for t in _inputs(CASES[1], "channels_last", True, torch.float32, device))
    torch.library.opcheck(_cuda_ext.ops().conv_norm_act_fwd.default, (x, weight, bias, 2, 1, 1e-5))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "override, message",
    [
        (lambda d: dict(x=torch.randn(2, 8, 15, 13, device=d).double()), "x must be float32"),
        (lambda d: dict(weight=torch.randn(16, 4, 4, 4, device=d)), r"weight must have shape \(C_out, C_in, kH, kW\)"),
        (lambda d: dict(weight=torch.randn(16, 8, 4, 4, device=d).half()), "weight must have x's dtype"),
        (lambda d: dict(bias=torch.randn(8, device=d)), r"bias must have shape \(C_out,\)"),
        (lambda d: dict(stride=0), "stride must be >= 1"),
    ],
)
def test_bad_arguments_are_named(override, message, device):
    x, weight, bias = _inputs(CASES[1], "nchw", True, torch.float32, device)
    args = dict(x=x, weight=weight, bias=bias, stride=2, padding=1, eps=1e-5) | override(device)
    with pytest.raises(RuntimeError, match=message):
        _cuda_ext.ops().conv_norm_act_fwd(*args.values())
