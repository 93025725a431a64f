"""Benchmark of l1_loss: the reference, Triton, the C++/CUDA op, and torch.compile of the reference.

    python bench/l1_loss.py [--tiny] [--modes fwd bwd full] [--no-save]

Shapes are images: 3 channels at 256x256 (batches 1 and 16) and 512x512 (batch 16). Only the first
input needs a gradient, as in the cycle, identity and pix2pix L1 terms whose targets are data.
"""

import functools

import _common  # first: without a GPU it sets TRITON_INTERPRET before triton is imported

import torch

from pyi2i.ops import l1_loss_cuda, l1_loss_triton
from pyi2i.ops.l1_loss import _l1_loss_ref

SHAPES = [(1, 3, 256, 256), (16, 3, 256, 256), (16, 3, 512, 512)]
TINY_SHAPES = [(1, 3, 16, 16), (2, 3, 9, 7)]


@functools.cache
def provider(name: str, variant: str):
    if name == "triton":
        return l1_loss_triton.l1_loss
    if name == "cuda":
        return l1_loss_cuda.l1_loss
    return torch.compile(_l1_loss_ref) if name == "compile" else _l1_loss_ref


def case(variant: str, shape, layout: str, dtype: str) -> _common.Case:
    device, torch_dtype = "cuda" if torch.cuda.is_available() else "cpu", _common.DTYPES[dtype]

    def inputs():
        x, y = (_common.in_layout(torch.randn(shape, device=device, dtype=torch_dtype), layout) for _ in range(2))
        return [x.requires_grad_(), y]

    def bytes_moved(mode: str) -> int:
        tensor_bytes = torch.Size(shape).numel() * torch_dtype.itemsize
        return {"fwd": 2 * tensor_bytes, "bwd": 3 * tensor_bytes, "full": 5 * tensor_bytes}[mode]  # x, y in; dx out

    return _common.Case(variant, shape, layout, dtype, inputs, bytes_moved)


def main(argv=None) -> list[dict]:
    args = _common.options(__doc__.splitlines()[0], ["ref", "triton", "cuda", "compile"], ["l1"], argv)
    cases = [case(*c) for c in _common.grid(args, SHAPES, TINY_SHAPES)]
    providers = {name: functools.partial(provider, name) for name in args.providers}
    return _common.run("l1_loss", args, providers, cases)


if __name__ == "__main__":
    _common.finish(main())
