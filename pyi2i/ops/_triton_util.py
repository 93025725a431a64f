"""What the Triton backends share: the availability check, the lazy kernel import, the device
guard and the plan of a flat reduction.

Triton is imported only when a kernel first runs, so `import pyi2i` works without it, and so
TRITON_INTERPRET (read by Triton when the kernels are defined) may be set any time before that.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from types import ModuleType

import torch

@functools.cache
def _triton_import_error() -> str | None:
    try:
        importlib.import_module("triton")
    except ModuleNotFoundError as e:
        if e.name == "triton":
            return "triton is not installed"
        return f"triton failed to import: {e}"
    except ImportError as e:
        return f"triton failed to import: {e}"
    return None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Triton's README lists NVIDIA GPUs of compute capability 8.0 and newer as supported hardware.
MIN_CAPABILITY = (8, 0)


# Checked on every call of an op, so cached in a plain dict, which torch.compile reads as a constant;
# the probe itself runs outside the traced graph.
_gpu_errors: dict[int, str | None] = {}


def gpu_error(device_index: int) -> str | None:
    """None when Triton can compile for and launch on this GPU, else why not (an old GPU, or a
    driver Triton cannot use: found here, before a kernel fails at its first launch)."""
    if device_index not in _gpu_errors:
        _gpu_errors[device_index] = _probe_gpu(device_index)
    return _gpu_errors[device_index]


@torch.compiler.disable
def _probe_gpu(device_index: int) -> str | None:
    capability = torch.cuda.get_device_capability(device_index)
    if capability < MIN_CAPABILITY:
        return (f"Triton supports GPUs of compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} and newer, "
                f"GPU {device_index} has {capability[0]}.{capability[1]}")
    try:
        from triton.runtime import driver

        driver.active.get_current_target()
    except Exception as e:  # noqa: BLE001 - any failure here means the kernels cannot launch
        return f"Triton cannot use the GPU driver: {type(e).__name__}: {e}"
    return None


def unavailable_reason(x: torch.Tensor) -> str | None:
    """None when the Triton kernels can run on x, else why not."""
    reason = _triton_import_error()
    if reason is not None:
        return reason
    if x.is_cuda:
        return gpu_error(x.device.index if x.device.index is not None else torch.cuda.current_device())
    if x.device.type == "cpu" and interpreting():
        return None
    return f"the input is on {x.device.type}; Triton runs on CUDA tensors, or on CPU under TRITON_INTERPRET=1"


@functools.cache
def kernels(name: str) -> ModuleType:
    """The device-code module pyi2i._triton.<name>, imported on first use."""
    return importlib.import_module(f"pyi2i._triton.{name}")


def device_guard(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Makes x's GPU current, so a launch goes to x's device and its current stream."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def parallel_programs(device: torch.device) -> int:
    """Programs needed to keep every SM of the device busy with two resident programs each; 1 under
    the interpreter, which runs programs one after another."""
    if device.type != "cuda":
        return 1
    return 2 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())


FLAT_BLOCK = 4096  # elements per program of a flat reduction: 16 fp32 per thread at 8 warps


def flat_plan(numel: int) -> tuple[int, int, int]:
    """(BLOCK, number of programs, num_warps) for a flat elementwise reduction over numel elements."""
    block = min(FLAT_BLOCK, next_power_of_2(max(numel, 16)))
    return block, -(-numel // block), max(1, min(8, block // 512))


def next_power_of_2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def mean_of_partials(partials: torch.Tensor, numel: int) -> torch.Tensor:
    """The second stage of a flat mean, in fp32: the per-program fp32 sums reduced by torch.sum,
    whose order is fixed for a given size (deterministic, no atomics)."""
    return partials.sum() / numel
