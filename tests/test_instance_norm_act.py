import pytest
import torch
import torch.nn.functional as F

from pyi2i import ops
from pyi2i.ops import _dispatch
from pyi2i.ops.norm_act import _instance_norm_act_ref


def _by_definition(x, act):
    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + 1e-5)
    return {"none": y, "relu": y.clamp_min(0), "leaky_relu": torch.where(y > 0, y, 0.2 * y)}[act]


@pytest.mark.parametrize("act", ["none", "relu", "leaky_relu"])
def test_reference_by_definition(act):
    x = torch.randn(2, 3, 5, 7)
    y = _by_definition(x, act)
    r = torch.randn_like(x)
    torch.testing.assert_close(ops.instance_norm_act(x, act=act, impl="ref"), y)
    torch.testing.assert_close(ops.instance_norm_act(x, act=act, residual=r, impl="ref"), r + y)


def test_affine_and_upcast():
    x, w, b = torch.randn(1, 4, 3, 3), torch.randn(4), torch.randn(4)
    expected = F.relu(F.instance_norm(x, weight=w, bias=b))
    torch.testing.assert_close(ops.instance_norm_act(x, w, b, act="relu", impl="ref"), expected)
    out = _instance_norm_act_ref(x.bfloat16(), act="relu", upcast=True)
    assert out.dtype == torch.bfloat16


def test_channels_last_input_is_accepted():
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(ops.instance_norm_act(x.to(memory_format=torch.channels_last), act="leaky_relu"),
                               _by_definition(x, "leaky_relu"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="act must be one of"):
        ops.instance_norm_act(torch.randn(1, 1, 2, 2), act="gelu")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ops.instance_norm_act(torch.randn(3, 2, 2))
    with pytest.raises(ValueError, match="residual shape"):
        ops.instance_norm_act(torch.randn(1, 1, 2, 2), residual=torch.randn(1, 1, 2, 3))


def test_auto_uses_the_reference_on_cpu_without_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x = torch.randn(1, 2, 3, 3)
    fn = _dispatch.select("instance_norm_act", "auto", x, _instance_norm_act_ref)
    assert fn is _instance_norm_act_ref


def test_missing_backend_raises_with_the_reason(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    with pytest.raises(ops.BackendUnavailable, match="'nonexistent_op'"):
        _dispatch.select("nonexistent_op", "triton", torch.zeros(1), lambda x: x)


def test_environment_overrides_the_argument(monkeypatch):
    monkeypatch.setenv("PYI2I_IMPL", "ref")
    x = torch.randn(1, 2, 3, 3)
    assert _dispatch.select("instance_norm_act", "triton", x, _instance_norm_act_ref) is _instance_norm_act_ref
    monkeypatch.setenv("PYI2I_IMPL", "fast")
    with pytest.raises(ValueError, match="PYI2I_IMPL"):
        ops.instance_norm_act(x)


def test_reference_only_overrides_any_backend(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    x = torch.randn(1, 2, 3, 3)
    with ops.reference_only():
        assert _dispatch.select("instance_norm_act", "triton", x, _instance_norm_act_ref) is _instance_norm_act_ref


@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
def test_reference_gradient_is_right_for_channels_last_gradients(x_layout):
    x = torch.randn(1, 8, 8, 8).contiguous(memory_format=x_layout).requires_grad_()
    dy = torch.randn(1, 8, 8, 8)
    (expected,) = torch.autograd.grad(ops.instance_norm_act(x, impl="ref"), x, dy)
    (got,) = torch.autograd.grad(ops.instance_norm_act(x, impl="ref"), x, dy.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected)
