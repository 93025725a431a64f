"""Shared pieces of the backend parity tests: the error rule, the devices, the Triton interpreter switch.

The error rule is flash-attention's criterion. A backend is compared with an exact result (the
reference run in a wider dtype: fp64 for fp32 inputs, fp32 for fp16/bf16) and must be at most about
twice as far from it as the reference itself is when run in the inputs' own dtype. Rounding in a low
precision is unavoidable, so a fixed tolerance would be either too loose for fp32 or too tight for
bf16; measured against what PyTorch itself achieves, the bound follows each dtype and each op. An
absolute slack covers values the reference happens to get (nearly) exact, where twice its error is 0.
"""

from __future__ import annotations

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")

# Backends with a CPU and a CUDA path run on both; the CUDA cases are skipped on machines without one.
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]

# How many times the reference's own low-precision error a backend may make.
ERROR_RATIO = 2.0


def max_error(result: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest absolute difference, computed in fp64 so that the subtraction itself is exact."""
    return (result.double() - expected.double()).abs().max().item()


def assert_error_within(
    name: str,
    got: torch.Tensor | None,
    low_precision_reference: torch.Tensor | None,
    exact: torch.Tensor | None,
    *,
    ratio: float = ERROR_RATIO,
    atol: float = 0.0,
    rtol: float = 0.0,
    min_scale: float = 0.0,
) -> None:
    """Assert max|got - exact| <= ratio * max|low_precision_reference - exact| + atol + rtol * scale,
    where scale = max(max|exact|, min_scale).

    rtol makes the slack a fraction of the largest exact value; min_scale keeps that slack from
    vanishing for small values (min_scale=1 gives rtol * max(1, max|exact|)). None stands for a
    gradient that is not computed: then all three must be None.
    """
    if exact is None or got is None or low_precision_reference is None:
        assert got is None and low_precision_reference is None and exact is None, (
            f"{name}: present in got={got is not None}, reference={low_precision_reference is not None}, "
            f"exact={exact is not None}"
        )
        return
    err = max_error(got, exact)
    ref_err = max_error(low_precision_reference, exact)
    scale = max(exact.abs().max().item(), min_scale)
    bound = ratio * ref_err + atol + rtol * scale
    assert err <= bound, (
        f"{name} ({got.dtype}): error {err:.3g} exceeds {bound:.3g} = {ratio:g} x the reference's own "
        f"{ref_err:.3g} + atol {atol:.3g} + rtol {rtol:.3g} x {scale:.3g}"
    )


def in_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """t in a memory layout the kernels must handle: 'nchw' (t as it is), 'channels_last', or
    'non_contiguous' (H and W swapped in memory: neither NCHW nor NHWC)."""
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "non_contiguous":
        return t.transpose(2, 3).contiguous().transpose(2, 3)
    if layout == "nchw":
        return t
    raise ValueError(f"unknown layout {layout!r}")


@pytest.fixture(autouse=True)
def interpret_triton_on_cpu(monkeypatch):
    """Without a CUDA device, run Triton kernels in its CPU interpreter (TRITON_INTERPRET=1).

    Autouse in every test module that imports it (``from parity import interpret_triton_on_cpu``),
    and nowhere else. Set per test, not for the process: under TRITON_INTERPRET=1 impl='auto' picks
    Triton on CPU in every other test too. Triton reads it when the kernels are first defined, at
    first launch.
    """
    if not HAS_CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
