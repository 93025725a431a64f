"""impl='auto' never crashes: a fast backend that cannot run gives way to the next, with one warning
naming the reason; an explicit impl raises with it.

impl='auto' tries the fast backends on GPUs only. Here the CPU is made to count as one
(`FAST_DEVICES`), so the same chain runs on the C++ CPU kernels and Triton's interpreter, and each
failure (the extension not built, Triton unable to run, a dtype no kernel takes) is simulated.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU
from pyi2i import ops
from pyi2i.ops import _cuda_ext, _dispatch, _triton_util
from pyi2i.ops.conv_norm_act import _conv_norm_act_ref
from pyi2i.ops.l1_loss import _l1_loss_ref

pytest.importorskip("triton", reason="the fallback chain ends in the Triton backend")

from pyi2i.ops import conv_norm_act_triton, l1_loss_cuda, l1_loss_triton  # noqa: E402

BUILD_ERROR = "simulated compiler error: no such file csrc/x.cpp"


@pytest.fixture(autouse=True)
def cpu_counts_as_a_gpu(monkeypatch):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    monkeypatch.setattr(_dispatch, "FAST_DEVICES", ("cpu",))
    monkeypatch.setattr(_dispatch, "_warned", set())


@pytest.fixture
def extension_not_built(monkeypatch):
    monkeypatch.setattr(_cuda_ext, "_extension_or_error", RuntimeError(BUILD_ERROR))


def _select(op, x, reference, impl="auto"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = _dispatch.select(op, impl, x, reference)
    return fn, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_auto_takes_the_first_backend_that_runs_without_a_warning():
    fn, caught = _select("l1_loss", torch.randn(4), _l1_loss_ref)
    assert fn is l1_loss_cuda.l1_loss
    assert caught == []


def test_an_unbuilt_extension_gives_way_to_triton_with_one_warning(extension_not_built):
    x = torch.randn(2, 3, 4, 4)
    fn, caught = _select("l1_loss", x, _l1_loss_ref)
    assert fn is l1_loss_triton.l1_loss
    assert len(caught) == 1 and BUILD_ERROR in caught[0] and "'cuda'" in caught[0], caught
    fn, caught = _select("l1_loss", x, _l1_loss_ref)  # the same reason is not repeated
    assert fn is l1_loss_triton.l1_loss and caught == []
    y = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(ops.l1_loss(x, y), torch.nn.functional.l1_loss(x, y))


def test_the_patchgan_block_stays_fused_without_the_extension(extension_not_built):
    fn, caught = _select("conv_norm_act", torch.randn(1, 3, 8, 8), _conv_norm_act_ref)
    assert fn is conv_norm_act_triton.conv_norm_act
    assert len(caught) == 1 and BUILD_ERROR in caught[0]


def test_triton_that_cannot_run_gives_way_to_the_reference(extension_not_built, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")  # a CPU tensor without the interpreter: Triton cannot run it
    fn, caught = _select("l1_loss", torch.randn(4), _l1_loss_ref)
    assert fn is _l1_loss_ref
    assert len(caught) == 2, caught
    assert BUILD_ERROR in caught[0] and "TRITON_INTERPRET" in caught[1]


def test_an_unsupported_dtype_falls_back_to_the_reference():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    fn, caught = _select("l1_loss", x, _l1_loss_ref)
    assert fn is _l1_loss_ref
    assert len(caught) == 2 and all("torch.float64" in message for message in caught), caught
    y = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert ops.l1_loss(x, y).dtype == torch.float64


@pytest.mark.parametrize("impl", ["cuda", "triton"])
def test_an_explicit_impl_raises_with_the_reason(extension_not_built, monkeypatch, impl):
    monkeypatch.delenv("TRITON_INTERPRET")
    expected = BUILD_ERROR if impl == "cuda" else "TRITON_INTERPRET"
    with pytest.raises(ops.BackendUnavailable, match=expected):
        ops.l1_loss(torch.randn(4), torch.randn(4), impl=impl)
    with pytest.raises(ops.BackendUnavailable, match="float64"):
        ops.l1_loss(torch.randn(4).double(), torch.randn(4).double(), impl="cuda")


def test_an_old_gpu_or_a_broken_driver_is_a_reason_not_a_crash(monkeypatch):
    import triton.runtime

    monkeypatch.setattr(_triton_util, "_gpu_errors", {})
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (7, 0))
    assert "compute capability 8.0" in _triton_util.gpu_error(0)

    class BrokenDriver:
        @property
        def active(self):
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    monkeypatch.setattr(_triton_util, "_gpu_errors", {})
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    monkeypatch.setattr(triton.runtime, "driver", BrokenDriver())
    assert "insufficient" in _triton_util.gpu_error(0)
