"""The operator registration every fused op shares, written once and registered for each backend.

A fused op is a pair of dispatcher operators, `<op>_fwd` and `<op>_bwd`, so that torch.compile and
CUDA graph capture see each direction as a single op. Each backend has its own namespace holding
operators of identical schemas:

    'cuda'   -> torch.ops.pyi2i_C  defined by csrc/bindings.cpp, registered here once it loads
    'triton' -> torch.ops.pyi2i    defined here; the CPU/CUDA kernel is `fwd` / `bwd` of
                                   pyi2i/ops/<op>_triton.py (Triton launches, imported on first use)

Because the schemas agree, one fake (meta) kernel per direction and one autograd formula per op
serve every backend: `register` installs them in each namespace, and `setup_context` leaves the
namespace in `ctx.ops` so that the op's `_backward` calls its own backend's `<op>_bwd`.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch

from pyi2i.ops import _cuda_ext

NAMESPACES = {"cuda": _cuda_ext.NAMESPACE, "triton": "pyi2i"}

_triton_library = torch.library.Library(NAMESPACES["triton"], "FRAGMENT")


def backend_ops(backend: str):
    """The operator namespace of `backend`, e.g. backend_ops('triton').l1_loss_fwd."""
    if backend == "cuda":
        return _cuda_ext.ops()  # loads the extension, or raises its build error
    return getattr(torch.ops, NAMESPACES[backend])


def _triton_kernel(op: str, direction: str) -> Callable:
    def run(*args):
        return getattr(importlib.import_module(f"pyi2i.ops.{op}_triton"), direction)(*args)

    return run


def register(
    op: str,
    *,
    fake_fwd: Callable,
    fake_bwd: Callable,
    setup_context: Callable,
    backward: Callable,
    triton_schemas: tuple[str, str] | None,
) -> None:
    """Registers `op`_fwd and `op`_bwd in every backend's namespace: the Triton operators' schemas
    (`triton_schemas`: the fwd and bwd signatures after the name, as in csrc/bindings.cpp; None where
    the op has no Triton operators) and kernels, and for every backend the fake kernels and the
    autograd formula of `op`_fwd. `op`_bwd gets a
    formula that raises: backpropagating through a gradient (create_graph=True, as in a gradient
    penalty) must fail, not silently drop second-order terms."""

    def no_double_backward(ctx, *grads):
        raise RuntimeError(f"the fused backward of {op} has no double backward; use impl='ref' where a gradient "
                           "is itself differentiated (a gradient penalty)")

    def register_in(namespace: str) -> None:
        ops = getattr(torch.ops, namespace)

        def setup(ctx, inputs, output):
            ctx.ops = ops
            setup_context(ctx, inputs, output)

        name = f"{namespace}::{op}"
        torch.library.register_fake(f"{name}_fwd")(fake_fwd)
        torch.library.register_fake(f"{name}_bwd")(fake_bwd)
        torch.library.register_autograd(f"{name}_fwd", backward, setup_context=setup)
        torch.library.register_autograd(f"{name}_bwd", no_double_backward,
                                        setup_context=lambda ctx, inputs, output: None)

    if triton_schemas is not None:
        for direction, schema in zip(("fwd", "bwd"), triton_schemas):
            _triton_library.define(f"{op}_{direction}{schema}")
            for key in ("CPU", "CUDA"):
                _triton_library.impl(f"{op}_{direction}", _triton_kernel(op, direction), key)
        register_in(NAMESPACES["triton"])
    _cuda_ext.on_load(lambda: register_in(NAMESPACES["cuda"]))


def loss_dtype(device_type: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype of a loss over inputs of `dtype`: fp32 under autocast, which lists PyTorch's losses
    (l1_loss, mse_loss, binary_cross_entropy_with_logits) among the ops it runs in fp32, else `dtype`.
    The fused losses sum in fp32 and return fp32; this is what they are cast to."""
    return torch.float32 if torch.is_autocast_enabled(device_type) else dtype
