"""The 'cuda' backend of instance_norm_act (C++ on CPU tensors, CUDA on GPU) against the reference."""

from __future__ import annotations

import pytest
import torch

from pyi2i.ops import _cuda_ext, instance_norm_act

from parity import (DEVICES, EXACT_DTYPE, assert_all_match, assert_matches, forward_backward,
                    instance_norm_act_reference, requires_cuda, to_dtype)

ACTIVATIONS = ["none", "relu", "leaky_relu"]

SHAPES = [
    (2, 3, 8, 8),
    (1, 4, 7, 5),  # N = 1, odd H x W
    (2, 40, 9, 11),  # C not a multiple of the vector or block width
    (2, 64, 16, 16),  # vectorised in both layouts
    (1, 4, 128, 128),  # few rows, long ones: split across blocks on CUDA (NCHW)
    (1, 8, 64, 64),  # split across blocks on CUDA (channels_last)
]
LAYOUTS = ["nchw", "channels_last", "strided"]
VARIANTS = {"plain": (False, False), "affine": (True, False), "residual": (False, True), "affine+residual": (True, True)}
EPS = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other column of a wider tensor
        wide = torch.empty(*t.shape[:3], 2 * t.shape[3], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    return t


def _inputs(shape, layout, variant, dtype, device):
    affine, with_residual = VARIANTS[variant]
    c = shape[1]
    x = _layout((torch.randn(shape, device=device) * 2 + 0.5).to(dtype), layout)  # a mean far from 0
    weight = (torch.randn(c, device=device) + 1).to(dtype) if affine else None
    bias = torch.randn(c, device=device).to(dtype) if affine else None
    residual = _layout(torch.randn(shape, device=device).to(dtype), layout) if with_residual else None
    return x, weight, bias, residual


def _named_inputs(shape, layout, variant, dtype, device):
    return dict(zip(["x", "weight", "bias", "residual"], _inputs(shape, layout, variant, dtype, device)))


def _run(fn, tensors, grad_out):
    """fn's output and the gradients of every tensor input, for one grad_out."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out.detach()] + [None if t is None else t.grad for t in leaves]


def _cuda_impl(x, weight, bias, residual, act):
    return instance_norm_act(x, weight, bias, residual=residual, act=act, eps=EPS, impl="cuda")


def _results(inputs, act, grad_out, dtype):
    """exact, low-precision reference and 'cuda' backend: each the output and every gradient."""
    options = dict(act=act, eps=EPS)
    exact = forward_backward(instance_norm_act_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out, **options)
    low = forward_backward(instance_norm_act_reference, inputs, grad_out, **options)
    got = forward_backward(instance_norm_act, inputs, grad_out, **options, impl="cuda")
    return exact, low, got


def _check_against_reference(shape, layout, variant, act, dtype, device):
    inputs = _named_inputs(shape, layout, variant, dtype, device)
    grad_out = _layout(torch.randn(shape, device=device).to(dtype), layout)
    exact, low, got = _results(inputs, act, grad_out, dtype)
    assert got["out"].dtype == dtype
    assert got["out"].is_contiguous(memory_format=_cuda_ext.memory_format(inputs["x"]))
    assert_all_match(got, low, exact, op="instance_norm_act", dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_one_by_one_plane(act, device):
    """A 1x1 plane normalises to 0: out = residual + act(bias), and x and weight get no gradient."""
    shape = (3, 5, 1, 1)
    inputs = _named_inputs(shape, "nchw", "affine+residual", torch.float32, device)
    grad_out = torch.randn(shape, device=device)
    exact, low, got = _results(inputs, act, grad_out, torch.float32)
    assert torch.equal(got["dx"], torch.zeros_like(inputs["x"]))
    assert torch.equal(got["dweight"], torch.zeros_like(inputs["weight"]))
    for name in ["out", "dbias", "dresidual"]:
        assert_matches(name, got[name], low[name], exact[name], op="instance_norm_act", dtype=torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference_fp32(shape, layout, variant, act, device):
    _check_against_reference(shape, layout, variant, act, torch.float32, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_matches_reference_low_precision(dtype, shape, layout, act, device):
    _check_against_reference(shape, layout, "affine+residual", act, dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_deterministic(layout, device):
    shape = (1, 8, 128, 128)  # split across blocks on CUDA in both layouts
    tensors = _inputs(shape, layout, "affine+residual", torch.float32, device)
    grad_out = _layout(torch.randn(shape, device=device), layout)
    first = _run(lambda *t: _cuda_impl(*t, "leaky_relu"), tensors, grad_out)
    second = _run(lambda *t: _cuda_impl(*t, "leaky_relu"), tensors, grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_weight_in_fp32_with_low_precision_input(device):
    """Autocast keeps parameters in fp32 while activations are bf16."""
    inputs = _named_inputs((2, 6, 9, 9), "nchw", "affine+residual", torch.bfloat16, device)
    grad_out = torch.randn((2, 6, 9, 9), device=device, dtype=torch.bfloat16)
    exact, low, _ = _results(inputs, "relu", grad_out, torch.bfloat16)
    fp32_parameters = to_dtype({"weight": inputs["weight"], "bias": inputs["bias"]}, torch.float32)
    got = forward_backward(instance_norm_act, inputs | fp32_parameters, grad_out, act="relu", eps=EPS, impl="cuda")
    assert got["out"].dtype == torch.bfloat16 and got["dweight"].dtype == torch.float32
    assert_all_match(got, low, exact, op="instance_norm_act", dtype=torch.bfloat16)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    """Schema, fake kernel and autograd registration agree with the real kernels."""
    x, weight, bias, residual = _inputs((2, 4, 5, 6), "channels_last", "affine+residual", torch.float32, device)
    for t in (x, weight, bias, residual):
        t.requires_grad_()
    torch.library.opcheck(_cuda_ext.ops().instance_norm_act_fwd.default, (x, weight, bias, residual, "relu", EPS))


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_raises(device):
    """A gradient penalty differentiates D's gradient: the backend must refuse, not drop terms."""
    x = _inputs((2, 4, 5, 6), "nchw", "plain", torch.float32, device)[0].requires_grad_()
    (grad_x,) = torch.autograd.grad(_cuda_impl(x, None, None, None, "leaky_relu").square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no double backward"):
        grad_x.sum().backward()


@pytest.mark.parametrize("device", DEVICES)
def test_compiles_to_single_ops_without_graph_breaks(device):
    x, weight, bias, residual = _inputs((2, 4, 5, 6), "nchw", "affine+residual", torch.float32, device)
    x.requires_grad_()
    fn = lambda x: _cuda_impl(x, weight, bias, residual, "relu")  # noqa: E731
    fn(x)  # builds and loads the extension outside tracing
    explain = torch._dynamo.explain(fn)(x)
    assert explain.graph_break_count == 0
    targets = [str(n.target) for n in explain.graphs[0].graph.nodes if n.op == "call_function"]
    assert targets.count("pyi2i_C.instance_norm_act_fwd") == 1
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    grad_out = torch.randn_like(x)
    torch.testing.assert_close(_run(compiled, [x], grad_out), _run(fn, [x], grad_out))


def _bad_call(device, **override):
    x, weight, bias, residual = _inputs((2, 4, 5, 6), "nchw", "affine+residual", torch.float32, device)
    args = dict(x=x, weight=weight, bias=bias, residual=residual, act="relu", eps=EPS) | override
    _cuda_ext.ops().instance_norm_act_fwd(*args.values())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "override, message",
    [
        (lambda d: dict(x=torch.randn(2, 4, 5, 6, dtype=torch.float64, device=d)), "x must be float32, float16 or bfloat16"),
        (lambda d: dict(x=torch.randn(4, 5, 6, device=d), residual=None), "x must be a 4-D"),
        (lambda d: dict(x=torch.randn(2, 4, 5, 12, device=d)[..., ::2], residual=None), "x must be contiguous"),
        (lambda d: dict(weight=torch.randn(3, device=d)), r"weight must have shape \(C,\)"),
        (lambda d: dict(bias=torch.randn(4, dtype=torch.float64, device=d)), "bias must be float32"),
        (lambda d: dict(residual=torch.randn(2, 4, 5, 6, device=d).half()), "residual must have x's dtype"),
        (lambda d: dict(residual=torch.randn(2, 4, 6, 5, device=d)), "residual must have x's shape"),
        (lambda d: dict(act="gelu"), "act must be one of"),
    ],
)
def test_bad_arguments_are_named(override, message, device):
    with pytest.raises(RuntimeError, match=message):
        _bad_call(device, **override(device))


@requires_cuda
def test_wrong_device_is_named():
    with pytest.raises(RuntimeError, match="weight must be on x's device"):
        _bad_call("cuda", weight=torch.randn(4))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_checks_saved_statistics(device):
    x = torch.randn(2, 4, 5, 6, device=device)
    stats = torch.zeros(7, device=device)
    with pytest.raises(RuntimeError, match="mean must be a contiguous"):
        _cuda_ext.ops().instance_norm_act_bwd(torch.randn_like(x), x, None, None, stats, stats, "none")
