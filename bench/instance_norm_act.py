"""Benchmark of instance_norm_act: the reference, Triton, the C++/CUDA op, and torch.compile of the reference.

    python bench/instance_norm_act.py [--tiny] [--variants ...] [--modes fwd bwd full] [--no-save]

Shapes are the ResNet generator's at 256x256 input (256 channels at 64x64 in the residual blocks,
64 channels at 256x256 at either end) for batches 1 and 16. Variants are its two uses: norm + ReLU,
and the residual block's norm + add. Instance norm there has no affine parameters.
"""

import functools

import _common  # first: without a GPU it sets TRITON_INTERPRET before triton is imported

import torch

from pyi2i.ops import instance_norm_act_cuda, instance_norm_act_triton
from pyi2i.ops.norm_act import _instance_norm_act_ref

SHAPES = [(1, 256, 64, 64), (16, 256, 64, 64), (1, 64, 256, 256), (16, 64, 256, 256)]
TINY_SHAPES = [(1, 8, 16, 16), (2, 16, 8, 8)]
VARIANTS = {"relu": ("relu", False), "none+residual": ("none", True)}  # name: (act, residual)
EPS = 1e-5


@functools.cache
def provider(name: str, variant: str):
    act = VARIANTS[variant][0]
    if name == "triton":
        return lambda x, residual: instance_norm_act_triton.instance_norm_act(x, None, None, residual, act, EPS)
    if name == "cuda":
        return lambda x, residual: instance_norm_act_cuda.instance_norm_act(x, None, None, residual, act, EPS)
    ref = lambda x, residual: _instance_norm_act_ref(x, None, None, residual, act, EPS)  # noqa: E731
    return torch.compile(ref) if name == "compile" else ref


def case(variant: str, shape, layout: str, dtype: str) -> _common.Case:
    has_residual = VARIANTS[variant][1]
    device, torch_dtype = "cuda" if torch.cuda.is_available() else "cpu", _common.DTYPES[dtype]

    def inputs():
        def tensor():
            t = torch.randn(shape, device=device, dtype=torch_dtype)
            return _common.in_layout(t, layout).requires_grad_()
        return [tensor(), tensor() if has_residual else None]

    def bytes_moved(mode: str) -> int:
        tensor_bytes = torch.Size(shape).numel() * torch_dtype.itemsize
        forward = (2 + has_residual) * tensor_bytes  # x (and residual) in, y out
        backward = 3 * tensor_bytes  # x and dy in, dx out; the residual's gradient is dy itself
        return {"fwd": forward, "bwd": backward, "full": forward + backward}[mode]

    return _common.Case(variant, shape, layout, dtype, inputs, bytes_moved)


def main(argv=None) -> list[dict]:
    args = _common.options(__doc__.splitlines()[0], ["ref", "triton", "cuda", "compile"], list(VARIANTS), argv)
    cases = [case(*c) for c in _common.grid(args, SHAPES, TINY_SHAPES)]
    providers = {name: functools.partial(provider, name) for name in args.providers}
    return _common.run("instance_norm_act", args, providers, cases)


if __name__ == "__main__":
    _common.finish(main())
