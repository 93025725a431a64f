"""Benchmark of gan_loss ('lsgan', 'vanilla'): the reference, Triton, the C++/CUDA op, and torch.compile of the reference.

    python bench/gan_loss.py [--tiny] [--variants lsgan vanilla] [--modes fwd bwd full] [--no-save]

Shapes are the discriminators' output maps at 256x256 input: the PatchGAN's 30x30 and the pixel
discriminator's 256x256, for batches 1 and 16 (one channel, so NCHW only).
"""

import functools

import _common  # first: without a GPU it sets TRITON_INTERPRET before triton is imported

import torch

from pyi2i.ops import gan_loss_cuda, gan_loss_triton
from pyi2i.ops.gan_loss import _gan_loss_ref

SHAPES = [(1, 1, 30, 30), (16, 1, 30, 30), (1, 1, 256, 256), (16, 1, 256, 256)]
TINY_SHAPES = [(1, 1, 30, 30), (2, 1, 7, 9)]


@functools.cache
def provider(name: str, mode: str):
    if name == "triton":
        return lambda pred: gan_loss_triton.gan_loss(pred, True, mode)
    if name == "cuda":
        return lambda pred: gan_loss_cuda.gan_loss(pred, True, mode)
    ref = lambda pred: _gan_loss_ref(pred, True, mode)  # noqa: E731
    return torch.compile(ref) if name == "compile" else ref


def case(variant: str, shape, layout: str, dtype: str) -> _common.Case:
    device, torch_dtype = "cuda" if torch.cuda.is_available() else "cpu", _common.DTYPES[dtype]

    def inputs():
        return [torch.randn(shape, device=device, dtype=torch_dtype).requires_grad_()]

    def bytes_moved(mode: str) -> int:
        tensor_bytes = torch.Size(shape).numel() * torch_dtype.itemsize
        return {"fwd": tensor_bytes, "bwd": 2 * tensor_bytes, "full": 3 * tensor_bytes}[mode]  # pred in; dpred out

    return _common.Case(variant, shape, layout, dtype, inputs, bytes_moved)


def main(argv=None) -> list[dict]:
    args = _common.options(__doc__.splitlines()[0], ["ref", "triton", "cuda", "compile"], gan_loss_triton.MODES, argv)
    cases = [case(*c) for c in _common.grid(args, SHAPES, TINY_SHAPES, layouts=["nchw"])]
    providers = {name: functools.partial(provider, name) for name in args.providers}
    return _common.run("gan_loss", args, providers, cases)


if __name__ == "__main__":
    _common.finish(main())
