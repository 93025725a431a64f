"""Benchmark of conv_norm_act, the PatchGAN block: the reference block, the C++/CUDA op, and
torch.compile of the reference.

    python bench/conv_norm_act.py [--tiny] [--variants ...] [--modes fwd bwd full] [--no-save]

Variants are the 70x70 PatchGAN's normalised layers at 256x256 input, 4x4 convolutions with a bias
that double the channels: layer2 64 -> 128 channels, 128x128 -> 64x64 (stride 2); layer3 128 -> 256,
64x64 -> 32x32 (stride 2); layer4 256 -> 512, 32x32 -> 31x31 (stride 1); batches 1 and 16.
GB/s counts x, the weight, the convolution output and the block output once each way: the
convolutions' arithmetic bounds these layers, so it compares providers rather than the memory
system. After the timings, memory: the bytes one forward keeps for backward beyond its inputs, and
on a GPU the peak allocated by a forward and backward.
"""

import functools

import _common  # first: without a GPU it sets TRITON_INTERPRET before triton is imported

import torch

from pyi2i.ops import conv_norm_act_cuda
from pyi2i.ops.conv_norm_act import _conv_norm_act_ref

LAYERS = {"layer2": (64, 128, 2), "layer3": (128, 64, 2), "layer4": (256, 32, 1)}  # C_in, H = W, stride
TINY_DIVISOR = 8  # --tiny divides channels and sizes by this
BATCHES = [(1,), (16,)]
TINY_BATCHES = [(1,), (2,)]


@functools.cache
def provider(name: str, variant: str):
    stride = LAYERS[variant][2]
    if name == "cuda":
        return lambda x, weight, bias: conv_norm_act_cuda.conv_norm_act(x, weight, bias, stride)
    ref = lambda x, weight, bias: _conv_norm_act_ref(x, weight, bias, stride)  # noqa: E731
    return torch.compile(ref) if name == "compile" else ref


def case(variant: str, batch, layout: str, dtype: str, tiny: bool) -> _common.Case:
    c_in, size, stride = LAYERS[variant]
    if tiny:
        c_in, size = c_in // TINY_DIVISOR, size // TINY_DIVISOR
    c_out, out_size = 2 * c_in, (size + 2 - 4) // stride + 1
    shape = (batch[0], c_in, size, size)
    device, torch_dtype = "cuda" if torch.cuda.is_available() else "cpu", _common.DTYPES[dtype]

    def inputs():
        x = _common.in_layout(torch.randn(shape, device=device, dtype=torch_dtype), layout)
        weight = torch.randn(c_out, c_in, 4, 4, device=device, dtype=torch_dtype) * 0.02
        bias = torch.zeros(c_out, device=device, dtype=torch_dtype)
        return [t.requires_grad_() for t in (x, weight, bias)]

    def bytes_moved(mode: str) -> int:
        x, params = torch.Size(shape).numel(), c_out * (c_in * 16 + 1)
        out = batch[0] * c_out * out_size * out_size
        forward = x + params + 2 * out  # x and the weight in; the convolution output and the block output out
        backward = 2 * (x + params + out)  # dy, the convolution output, x and the weight in; dx and dweight out
        return torch_dtype.itemsize * {"fwd": forward, "bwd": backward, "full": forward + backward}[mode]

    return _common.Case(variant, shape, layout, dtype, inputs, bytes_moved)


def memory_row(name: str, case: _common.Case, device: str) -> dict:
    """What a forward keeps for backward beyond its inputs (distinct storages, as autograd saves
    them) and, on a GPU, the peak allocated by a forward and backward beyond the inputs."""
    fn, inputs = provider(name, case.variant), case.inputs()
    input_storages = {t.untyped_storage().data_ptr() for t in inputs}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in input_storages:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    peak = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn(*inputs)
        torch.autograd.grad(out, inputs, torch.randn_like(out))
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    return dict(op="conv_norm_act", variant=case.variant, provider=name, mode="memory", layout=case.layout,
                dtype=case.dtype, shape=list(case.shape), saved_bytes=sum(saved.values()), peak_bytes=peak)


def memory_table(rows: list[dict]) -> str:
    mb = lambda n: "-" if n is None else f"{n / 2**20:.3g}"  # noqa: E731
    lines = ["| variant | provider | layout | dtype | shape | saved for backward MB | peak MB | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"| {r['variant']} | {r['provider']} | {r['layout']} | {r['dtype']} | {shape} | "
                     f"{mb(r['saved_bytes'])} | {mb(r['peak_bytes'])} | {_common.cell(r['status'])} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    args = _common.options(__doc__.splitlines()[0], ["ref", "cuda", "compile"], list(LAYERS), argv)
    cases = [case(*c, tiny=args.tiny) for c in _common.grid(args, BATCHES, TINY_BATCHES)]
    rows = _common.run("conv_norm_act", args, {name: functools.partial(provider, name) for name in args.providers},
                       cases)

    # Saved tensors bypass hooks inside compiled graphs, so torch.compile is left out here; so is a
    # provider whose timing rows say it cannot run here.
    env = _common.environment(args.device)
    memory = []
    for c in cases:
        for name in args.providers:
            if name == "compile" or _common.backend_unavailable(name, c.inputs()[0]) is not None:
                continue
            try:
                memory.append(memory_row(name, c, args.device) | dict(status="ok"))
            except Exception as e:  # noqa: BLE001 - a failed row is reported, and fails the run
                memory.append(dict(op="conv_norm_act", variant=c.variant, provider=name, mode="memory",
                                   layout=c.layout, dtype=c.dtype, shape=list(c.shape), saved_bytes=None,
                                   peak_bytes=None, status=_common.failure(e)))
    if args.save:
        _common.append_rows("conv_norm_act", [row | env for row in memory])
    print("\nconv_norm_act memory\n")
    print(memory_table(memory))
    return rows + [row | env for row in memory]


if __name__ == "__main__":
    _common.finish(main())
