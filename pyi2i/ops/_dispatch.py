"""Backend selection shared by every op in pyi2i.ops.

Each op module `pyi2i/ops/<op>.py` holds the pure-PyTorch reference (the specification) and calls
`select(op, impl, tensor)` to get the function that runs it. A fast backend is a separate module
`pyi2i/ops/<op>_<backend>.py` exposing:

    unavailable_reason(x: torch.Tensor) -> str | None   # None when it can run on x
    <op>(...)                                            # same signature and semantics as the reference

so adding a backend to an op only adds a module. `impl='auto'` tries the fast backends in order on
CUDA tensors and falls back to the reference, saying once which one it chose. A fast backend that
cannot run (Triton without a usable GPU driver, the extension not built, a dtype the kernels do not
take) gives way to the next with one warning naming the reason, never a crash. An explicit `impl`
(argument or the PYI2I_IMPL environment variable, which overrides the argument) never falls back:
it raises with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from typing import Callable

import torch

from pyi2i.errors import UserError
from pyi2i.ops._layout import KERNEL_DTYPES

IMPLS = ("auto", "ref", "triton", "cuda")
FAST_BACKENDS = ("cuda", "triton")  # preference order for impl='auto'
FAST_DEVICES = ("cuda",)  # devices where impl='auto' tries them; elsewhere the reference is fastest

log = logging.getLogger("pyi2i.ops")


class BackendUnavailable(UserError, RuntimeError):
    """An explicitly requested backend cannot run this op on this input."""


def requested_impl(impl: str) -> str:
    """The impl in force: PYI2I_IMPL when set, else the argument."""
    impl = os.environ.get("PYI2I_IMPL", "").strip() or impl
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r} (check the argument or PYI2I_IMPL)")
    return impl


_modules: dict[tuple[str, str], object] = {}


def _backend_module(op: str, backend: str):
    """The module implementing `op` for `backend`, or a string saying why there is none.

    Looked up on every call of an op, so cached in a plain dict: torch.compile traces the lookup of
    a cached entry, and the import itself runs outside the traced graph."""
    found = _modules.get((op, backend))
    if found is None:
        found = _modules[(op, backend)] = _import_backend(op, backend)
    return found


@torch.compiler.disable
def _import_backend(op: str, backend: str):
    name = f"pyi2i.ops.{op}_{backend}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return f"pyi2i has no {backend!r} implementation of {op!r}"
        return f"the {backend!r} backend of {op!r} needs the missing module {e.name!r}"
    except ImportError as e:  # a backend whose dependency is broken must say so, not vanish
        return f"the {backend!r} backend of {op!r} failed to import: {e}"


def _try_backend(op: str, backend: str, x: torch.Tensor) -> tuple[Callable | None, str | None]:
    module = _backend_module(op, backend)
    if isinstance(module, str):
        return None, module
    if x.dtype not in KERNEL_DTYPES:
        return None, f"{backend!r} backend of {op!r} takes float32, float16 or bfloat16 inputs, got {x.dtype}"
    reason = module.unavailable_reason(x)
    if reason is not None:
        return None, f"{backend!r} backend of {op!r} cannot run here: {reason}"
    return getattr(module, op), None


_announced: set[tuple[str, str, str]] = set()
_reference_only = False


@contextlib.contextmanager
def reference_only():
    """Every op runs its reference inside: for double backward (the WGAN-GP gradient penalty
    differentiates D's gradient), which the fused backward kernels do not provide."""
    global _reference_only
    previous, _reference_only = _reference_only, True
    try:
        yield
    finally:
        _reference_only = previous


def select(op: str, impl: str, x: torch.Tensor, reference: Callable) -> Callable:
    """The function that runs `op` on input `x` for the requested `impl`."""
    impl = requested_impl(impl)
    if impl == "ref" or _reference_only:
        return reference
    if impl != "auto":
        fn, reason = _try_backend(op, impl, x)
        if fn is None:
            raise BackendUnavailable(f"{reason}. Use impl='auto' (or unset PYI2I_IMPL) to fall back to an available backend.")
        return fn
    # Fast backends exist for GPUs; on a CPU the reference is both the fastest and the specification
    # (the C++ and interpreted Triton CPU paths are there to be tested, and ask for by name).
    if x.device.type in FAST_DEVICES:
        for backend in FAST_BACKENDS:
            fn, reason = _try_backend(op, backend, x)
            if fn is not None:
                _announce(op, backend, x)
                return fn
            _warn_fallback(op, backend, x, reason)
    _announce(op, "ref", x)
    return reference


_warned: set[tuple[str, str, str]] = set()


def _warn_fallback(op: str, backend: str, x: torch.Tensor, reason: str) -> None:
    """One warning per op, backend and device type: the reason is the same on every call."""
    key = (op, backend, x.device.type)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"pyi2i.ops: {reason}; impl='auto' falls back to the next backend", RuntimeWarning, stacklevel=4)


def _announce(op: str, backend: str, x: torch.Tensor) -> None:
    key = (op, backend, x.device.type)
    if key not in _announced:
        _announced.add(key)
        log.info("pyi2i.ops: %s on %s uses the %r backend", op, x.device.type, backend)
