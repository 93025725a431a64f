"""The Triton instance_norm_act against the reference: the output and every gradient."""

import pytest
import torch
import torch.nn.functional as F

from parity import (EXACT_DTYPE, TOLERANCES, assert_all_match, forward_backward, in_layout, instance_norm_act_reference,
                    to_dtype)
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU

pytest.importorskip("triton", reason="the Triton backend needs the triton package (pip install triton)")

from pyi2i import ops  # noqa: E402
from pyi2i.ops import _dispatch, _triton_util  # noqa: E402
from pyi2i.ops import instance_norm_act_triton as triton_impl  # noqa: E402
from pyi2i.ops.norm_act import _instance_norm_act_ref  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPS = 1e-5

# Launch heuristics that send the tiny shapes below down each path of the kernels: a row in one
# tile held in registers, a row looped over in tiles, rows split across programs (two stages).
PATHS = {
    "one_tile": dict(MAX_TILE=4096, TARGET_PROGRAMS=1),
    "looped": dict(MAX_TILE=16, TARGET_PROGRAMS=1),
    "split": dict(MAX_TILE=16, TARGET_PROGRAMS=8),
}

CASES = [  # shape, layout, act, affine, residual, path
    ((2, 3, 7, 5), "nchw", "relu", True, False, "one_tile"),
    ((2, 3, 7, 5), "channels_last", "leaky_relu", True, False, "one_tile"),
    ((1, 40, 3, 3), "channels_last", "none", False, True, "one_tile"),  # 40 channels: a ragged channel block
    ((1, 40, 3, 3), "nchw", "leaky_relu", False, False, "one_tile"),
    ((2, 5, 6, 9), "non_contiguous", "leaky_relu", True, False, "one_tile"),
    ((2, 3, 7, 5), "nchw", "none", True, True, "looped"),
    ((1, 3, 11, 7), "channels_last", "relu", False, False, "split"),
    ((1, 4, 9, 9), "nchw", "leaky_relu", True, True, "split"),
]


def _use_path(monkeypatch, path, x):
    for name, value in PATHS[path].items():
        monkeypatch.setattr(triton_impl, name, value)
    plan = triton_impl._plan(x, triton_impl._memory_format(x) == torch.channels_last)
    taken = "one_tile" if plan.one_tile else "split" if plan.blocks["SPLIT"] > 1 else "looped"
    assert taken == path, f"the heuristics chose the {taken} path for a {path} case"


def _inputs(shape, layout, affine, residual, dtype):
    C = shape[1]
    x = torch.randn(shape, device=DEVICE) * 2 + 0.5  # a mean away from 0 tests the statistics
    return dict(
        x=in_layout(x.to(dtype), layout),
        weight=(1 + 0.5 * torch.randn(C, device=DEVICE)).to(dtype) if affine else None,
        bias=(0.5 * torch.randn(C, device=DEVICE)).to(dtype) if affine else None,
        residual=in_layout(torch.randn(shape, device=DEVICE).to(dtype), layout) if residual else None,
    )


def _forward_backward(fn, inputs, act, dy):
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items() if v is not None}
    y = fn(leaves["x"], leaves.get("weight"), leaves.get("bias"), leaves.get("residual"), act, EPS)
    grads = torch.autograd.grad(y, list(leaves.values()), dy.to(y.dtype))
    return {"out": y, **{f"d{k}": g for k, g in zip(leaves, grads)}}


@pytest.mark.parametrize("dtype", TOLERANCES["instance_norm_act"], ids=str)
@pytest.mark.parametrize("shape,layout,act,affine,residual,path", CASES, ids=str)
def test_matches_reference(monkeypatch, shape, layout, act, affine, residual, path, dtype):
    inputs = _inputs(shape, layout, affine, residual, dtype)
    _use_path(monkeypatch, path, inputs["x"])
    dy = torch.randn(shape, device=DEVICE)
    options = dict(act=act, eps=EPS)
    exact = forward_backward(instance_norm_act_reference, to_dtype(inputs, EXACT_DTYPE[dtype]), dy, **options)
    low = forward_backward(instance_norm_act_reference, inputs, dy, **options)
    got = forward_backward(ops.instance_norm_act, inputs, dy, **options, impl="triton")
    assert got["out"].dtype == dtype
    if layout == "channels_last":
        assert got["out"].is_contiguous(memory_format=torch.channels_last)
    assert_all_match(got, low, exact, op="instance_norm_act", dtype=dtype)


def test_one_by_one_plane_normalises_to_zero():
    # F.instance_norm refuses a single spatial element; ATen's instance_norm gives 0 (x == mean)
    shape = (2, 3, 1, 1)
    inputs = dict(x=torch.randn(shape, device=DEVICE), weight=torch.randn(3, device=DEVICE),
                  bias=torch.randn(3, device=DEVICE), residual=torch.randn(shape, device=DEVICE))
    dy = torch.randn(shape, device=DEVICE)

    def aten(x, w, b, r, act, eps):
        return r + ops.activation(torch.instance_norm(x, w, b, None, None, True, 0.0, eps, False), act)

    got = _forward_backward(triton_impl.instance_norm_act, inputs, "leaky_relu", dy)
    expected = _forward_backward(aten, inputs, "leaky_relu", dy)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)


@pytest.mark.parametrize("path", ["looped", "split"])
def test_deterministic(monkeypatch, path):
    inputs = _inputs((1, 4, 9, 9), "channels_last", True, True, torch.float32)
    _use_path(monkeypatch, path, inputs["x"])
    dy = torch.randn(1, 4, 9, 9, device=DEVICE)
    first, second = (_forward_backward(triton_impl.instance_norm_act, inputs, "leaky_relu", dy) for _ in range(2))
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_impl_triton_dispatches_to_triton(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    assert _dispatch.select("instance_norm_act", "triton", x, _instance_norm_act_ref) is triton_impl.instance_norm_act
    torch.testing.assert_close(ops.instance_norm_act(x, act="relu", impl="triton"),
                               _instance_norm_act_ref(x, act="relu"))


@pytest.mark.skipif(DEVICE != "cuda", reason="impl='auto' picks Triton on CUDA tensors; no GPU here")
def test_auto_picks_a_fast_backend_on_cuda(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    cuda_fn, _ = _dispatch._try_backend("instance_norm_act", "cuda", x)  # preferred when built
    chosen = _dispatch.select("instance_norm_act", "auto", x, _instance_norm_act_ref)
    assert chosen is (cuda_fn or triton_impl.instance_norm_act)


@pytest.mark.skipif(DEVICE != "cpu", reason="tests the CPU interpreter's switch")
def test_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x = torch.randn(1, 2, 3, 3)
    assert "TRITON_INTERPRET=1" in _triton_util.unavailable_reason(x)
    with pytest.raises(ops.BackendUnavailable, match="TRITON_INTERPRET"):
        ops.instance_norm_act(x, impl="triton")


def test_custom_ops_pass_opcheck():
    x = torch.randn(2, 3, 5, 4, device=DEVICE).to(memory_format=torch.channels_last).requires_grad_()
    w, b = torch.randn(3, device=DEVICE, requires_grad=True), torch.randn(3, device=DEVICE, requires_grad=True)
    torch.library.opcheck(torch.ops.pyi2i.instance_norm_act_fwd.default, (x, w, b, None, "leaky_relu", EPS))
    y, mean, rstd = torch.ops.pyi2i.instance_norm_act_fwd(x, w, b, None, "relu", EPS)
    torch.library.opcheck(torch.ops.pyi2i.instance_norm_act_bwd.default,
                          (torch.randn_like(y), x.detach(), w.detach(), b.detach(), mean, rstd, "relu"))


def test_rejects_bad_arguments():
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    with pytest.raises(ValueError, match="act"):
        triton_impl.instance_norm_act(x, None, None, None, "gelu", EPS)
    with pytest.raises(ValueError, match="weight"):
        triton_impl.instance_norm_act(x, torch.ones(4, device=DEVICE), None, None, "none", EPS)
    with pytest.raises(TypeError, match="float32"):
        triton_impl.instance_norm_act(x.double(), None, None, None, "none", EPS)
    with pytest.raises(ValueError, match="residual"):
        triton_impl.instance_norm_act(x, None, None, x[:1], "none", EPS)


@pytest.mark.parametrize("path", ["looped", "split"])
def test_statistics_survive_a_large_mean(monkeypatch, path):
    # merged tile statistics; a plain sum of squares would cancel to nothing here
    x = torch.randn(1, 2, 16, 16, device=DEVICE) + 1e4
    _use_path(monkeypatch, path, x)
    expected = F.instance_norm(x.double(), eps=EPS).float()
    # 1e4 has an fp32 spacing of 1e-3: the rounding of the mean alone moves x - mean by half that
    torch.testing.assert_close(triton_impl.instance_norm_act(x, None, None, None, "none", EPS), expected,
                               atol=1e-3, rtol=0)


def test_compiles_to_one_graph():
    def block(x, w, residual):
        h = triton_impl.instance_norm_act(x, w, None, None, "leaky_relu", EPS)
        return triton_impl.instance_norm_act(h, None, None, residual, "none", EPS)

    x = torch.randn(2, 3, 6, 5, device=DEVICE).to(memory_format=torch.channels_last).requires_grad_()
    w, residual = torch.randn(3, device=DEVICE, requires_grad=True), torch.randn(2, 3, 6, 5, device=DEVICE)
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    for got, expected in zip(_value_and_grads(compiled, x, w, residual), _value_and_grads(block, x, w, residual)):
        torch.testing.assert_close(got, expected)


def _value_and_grads(fn, x, w, residual):
    y = fn(x, w, residual)
    return (y, *torch.autograd.grad(y.square().sum(), (x, w)))
