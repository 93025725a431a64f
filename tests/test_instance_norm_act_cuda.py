"""The 'cuda' backend of instance_norm_act (C++ on CPU tensors, CUDA on GPU) against the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pyi2i.ops import _cuda_ext, instance_norm_act
from pyi2i.ops.norm_act import ACTIVATIONS, _instance_norm_act_ref, activation

from parity import DEVICES, assert_error_within, requires_cuda

# dtype -> (exact dtype, atol, rtol) of assert_error_within: the reference run on the inputs cast
# to the exact dtype is the truth, the reference in the input's own dtype sets the bound.
DTYPES = {
    torch.float32: (torch.float64, 1e-5, 1e-6),
    torch.float16: (torch.float32, 1e-3, 0.0),
    torch.bfloat16: (torch.float32, 8e-3, 0.0),
}

SHAPES = [
    (2, 3, 8, 8),
    (1, 4, 7, 5),  # N = 1, odd H x W
    (3, 5, 1, 1),  # 1x1 spatial
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


def _reference(x, weight, bias, residual, act):
    """The reference, in x's dtype. With 1x1 spatial it refuses to run (F.instance_norm needs more
    than one value per channel); group norm with one group per channel is the same computation."""
    if x.shape[2] * x.shape[3] > 1:
        return _instance_norm_act_ref(x, weight, bias, residual, act, EPS)
    y = activation(F.group_norm(x, x.shape[1], weight, bias, EPS), act)
    return y if residual is None else residual + y


def _run(fn, tensors, grad_out):
    """fn's output and the gradients of every tensor input, for one grad_out."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out.detach()] + [None if t is None else t.grad for t in leaves]


def _run_reference(act, tensors, grad_out):
    """_run for the reference, on NCHW copies: the math does not depend on the layout, and torch's
    CPU instance-norm backward mis-computes some channels_last cases (N = 1, no activation)."""
    nchw = [None if t is None else t.contiguous() for t in tensors]
    return _run(lambda *t: _reference(*t, act), nchw, grad_out.contiguous())


def _cuda_impl(x, weight, bias, residual, act):
    return instance_norm_act(x, weight, bias, residual=residual, act=act, eps=EPS, impl="cuda")


def _check_against_reference(shape, layout, variant, act, dtype, device):
    tensors = _inputs(shape, layout, variant, dtype, device)
    grad_out = _layout(torch.randn(shape, device=device).to(dtype), layout)
    exact_dtype, atol, rtol = DTYPES[dtype]
    exact = _run_reference(act, [None if t is None else t.to(exact_dtype) for t in tensors], grad_out.to(exact_dtype))
    reference = _run_reference(act, tensors, grad_out)
    got = _run(lambda *t: _cuda_impl(*t, act), tensors, grad_out)
    assert got[0].dtype == dtype
    assert got[0].is_contiguous(memory_format=_cuda_ext.memory_format(tensors[0]))
    for name, g, r, e in zip(["out", "x", "weight", "bias", "residual"], got, reference, exact):
        assert_error_within(name, g, r, e, atol=atol, rtol=rtol)


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
    x, weight, bias, residual = _inputs((2, 6, 9, 9), "nchw", "affine+residual", torch.bfloat16, device)
    weight, bias = weight.float(), bias.float()
    grad_out = torch.randn(x.shape, device=device, dtype=torch.bfloat16)
    got = _run(lambda *t: _cuda_impl(*t, "relu"), (x, weight, bias, residual), grad_out)
    expected = _run_reference("relu", (x.float(), weight, bias, residual.float()), grad_out.float())
    assert got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.float(), e, atol=0.1, rtol=0.05)


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
