"""The error rule of tests/parity.py can fail: for every op, backend and dtype, the backend's true
result passes it, and the same result zeroed, halved, sign-flipped or with one element off by one
element's worth fails it, in the output and in every gradient."""

from __future__ import annotations

import pytest
import torch

from pyi2i import ops

from parity import (EXACT_DTYPE, TOLERANCES, assert_all_match, conv_norm_act_reference, forward_backward,
                    gan_loss_reference, in_layout, instance_norm_act_reference, l1_loss_reference, parity_error,
                    to_dtype)
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _l1_loss(dtype):
    x, y = torch.randn(2, 3, 5, 7, device=DEVICE).to(dtype), torch.randn(2, 3, 5, 7, device=DEVICE).to(dtype)
    y[..., 1::3] = x[..., 1::3]  # ties: zero gradient in some elements
    return ops.l1_loss, l1_loss_reference, {"x": x, "y": y}, {}


def _gan_loss(mode):
    def case(dtype):
        pred = (torch.randn(2, 1, 6, 5, device=DEVICE) * 2).to(dtype)
        return ops.gan_loss, gan_loss_reference, {"pred": pred}, {"target_is_real": True, "mode": mode}
    return case


def _instance_norm_act(dtype):
    shape = (2, 3, 5, 4)
    inputs = {
        "x": in_layout((torch.randn(shape, device=DEVICE) * 2 + 0.5).to(dtype), "channels_last"),
        "weight": (1 + 0.5 * torch.randn(3, device=DEVICE)).to(dtype),
        "bias": (0.5 * torch.randn(3, device=DEVICE)).to(dtype),
        "residual": in_layout(torch.randn(shape, device=DEVICE).to(dtype), "channels_last"),
    }
    return ops.instance_norm_act, instance_norm_act_reference, inputs, {"act": "leaky_relu"}


def _conv_norm_act(dtype):
    inputs = {"x": torch.randn(2, 3, 9, 8, device=DEVICE).to(dtype),
              "weight": (torch.randn(4, 3, 4, 4, device=DEVICE) * 0.2).to(dtype)}
    return ops.conv_norm_act, conv_norm_act_reference, inputs, {"stride": 2}


# op (as in TOLERANCES), backends, case(dtype) -> (op function, reference, tensor inputs, other arguments)
OPS = {
    "l1_loss": ("l1_loss", ["cuda", "triton"], _l1_loss),
    "gan_loss_lsgan": ("gan_loss", ["cuda", "triton"], _gan_loss("lsgan")),
    "gan_loss_vanilla": ("gan_loss", ["cuda", "triton"], _gan_loss("vanilla")),
    "instance_norm_act": ("instance_norm_act", ["cuda", "triton"], _instance_norm_act),
    "conv_norm_act": ("conv_norm_act", ["cuda"], _conv_norm_act),
}
CASES = [(name, backend, dtype) for name, (op, backends, _) in OPS.items() for backend in backends
         for dtype in TOLERANCES[op]]


def _one_element_off(t: torch.Tensor) -> torch.Tensor:
    """t with its smallest element moved by the mean magnitude of t's elements (one element's worth),
    at the smallest one so that the change is not lost to rounding."""
    flat = t.detach().flatten().to(torch.float32, copy=True)
    i = flat.abs().argmin()
    flat[i] += flat.abs().mean()
    return flat.to(t.dtype).view(t.shape)


CORRUPTIONS = {
    "zeroed": torch.zeros_like,
    "halved": lambda t: t / 2,
    "sign_flipped": lambda t: -t,
    "one_element_off": _one_element_off,
}


@pytest.mark.parametrize("name, backend, dtype", CASES, ids=str)
def test_rule_accepts_the_true_result_and_rejects_corrupted_ones(name, backend, dtype):
    op, _, make_case = OPS[name]
    fn, reference, inputs, arguments = make_case(dtype)
    grad_out = torch.randn(reference(**inputs, **arguments).shape, device=DEVICE)
    exact = forward_backward(reference, to_dtype(inputs, EXACT_DTYPE[dtype]), grad_out, **arguments)
    low = forward_backward(reference, inputs, grad_out, **arguments)
    got = forward_backward(fn, inputs, grad_out, **arguments, impl=backend)
    assert_all_match(got, low, exact, op=op, dtype=dtype)
    rtol = TOLERANCES[op][dtype]
    for key in exact:
        for corruption, corrupt in CORRUPTIONS.items():
            wrong = corrupt(got[key])
            assert not torch.equal(wrong, got[key]), f"{key} {corruption}: the corruption changed nothing"
            assert parity_error(key, wrong, low[key], exact[key], rtol=rtol) is not None, (
                f"{key} {corruption} passes the error rule")


def test_rule_refuses_an_all_zero_exact_value():
    """A zeroed result would pass such a comparison."""
    zeros = torch.zeros(10)
    with pytest.raises(ValueError, match="all zero"):
        parity_error("t", zeros, zeros, zeros.double(), rtol=1e-3)


def test_rule_refuses_a_bound_that_passes_a_halved_result():
    """A low-precision reference wrong by a fifth of the magnitude would allow twice that error."""
    exact = torch.randn(10, dtype=torch.float64)
    low = (exact + 0.2 * exact.abs().max()).float()
    with pytest.raises(ValueError, match="cannot fail"):
        parity_error("t", exact.float(), low, exact, rtol=1e-3)
