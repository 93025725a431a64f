"""Training-step throughput: the original release's loop against pyi2i's configurations.

    python bench/train.py                      # GPU: cyclegan + pix2pix, 256x256, batch 1, 4, 16
    python bench/train.py --tiny               # any machine: tiny networks and images (automatic on CPU)
    python bench/train.py --data loader        # batches through the torch data loader instead of on the device
    python bench/train.py --data dali          # batches through the DALI loader (into the graph's inputs)

Rows, each adding to the one before: the original release's loop (eager fp32, separate kernels,
losses read on the host every print_freq steps, as pyi2i.testing.original runs it), pyi2i eager fp32, + bf16 autocast, + channels_last, + fused ops
(impl='auto'), + CUDA graphs; and torch.compile as an alternative to the graphs. Reported:
iterations/s, images/s, peak memory, and model FLOP utilisation (FLOPs of one iteration counted by
FlopCounterMode, over the bf16 matmul rate measured on the same device), and each row's speed-up
over the original loop measured in the same run on the same batches. Prints a markdown table last
and appends JSON rows to bench/results/train.jsonl (by default on a GPU only). A configuration that
raises is a FAILED row and the script exits non-zero; one this machine cannot run is a skipped row
that says why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import pyi2i.testing.original as orig  # noqa: E402
from pyi2i.config import TrainConfig  # noqa: E402
from pyi2i.data import create_loader, ensure_demo  # noqa: E402
from pyi2i.data.dali import DaliLoader  # noqa: E402
from pyi2i.engine.batches import training_dataset  # noqa: E402
from pyi2i.engine.graphs import CudaGraphStep, prefetch_to_device  # noqa: E402
from pyi2i.engine.methods import build_method  # noqa: E402
from pyi2i.models.original_format import to_original  # noqa: E402

# (name, options added to pyi2i's command line); each row builds on the previous one
CONFIGS = [
    ("pyi2i eager fp32", ["--impl", "ref"]),
    ("+ bf16", ["--impl", "ref", "--amp", "bf16"]),
    ("+ channels_last", ["--impl", "ref", "--amp", "bf16", "--channels_last"]),
    ("+ fused ops", ["--impl", "auto", "--amp", "bf16", "--channels_last"]),
    ("+ CUDA graphs", ["--impl", "auto", "--amp", "bf16", "--channels_last", "--cuda-graphs"]),
    ("torch.compile", ["--impl", "auto", "--amp", "bf16", "--channels_last", "--compile"]),
]
NEEDS_CUDA = {"+ bf16", "+ channels_last", "+ fused ops", "+ CUDA graphs"}


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", choices=("cyclegan", "pix2pix"), default=["cyclegan", "pix2pix"])
    p.add_argument("--batch_sizes", nargs="+", type=int, default=None, help="default: 1 4 16 (tiny: 1)")
    p.add_argument("--data", choices=("device", "loader", "dali"), default="device",
                   help="batches kept on the device, or fed by the torch or the DALI loader")
    p.add_argument("--steps", type=int, default=None, help="timed iterations (default: 50, tiny: 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default: 10, tiny: 1)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--configs", nargs="+", default=None, help="row names to run (default: all that can run here)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.tiny = args.tiny or args.device == "cpu"
    args.batch_sizes = args.batch_sizes or ([1] if args.tiny else [1, 4, 16])
    args.steps = args.steps or (3 if args.tiny else 50)
    args.warmup = args.warmup or (1 if args.tiny else 10)
    args.save = args.device == "cuda" if args.save is None else args.save
    return args


def training_opt(arch: str, batch_size: int, tiny: bool, dataroot: str, extra: list[str]):
    size = ["--ngf", "8", "--ndf", "8", "--load_size", "32", "--crop_size", "32"] if tiny else \
           ["--load_size", "256", "--crop_size", "256"]
    net = ["--netG", "resnet_6blocks"] if tiny and arch == "cyclegan" else \
          ["--netG", "unet_128", "--load_size", "128", "--crop_size", "128"] if tiny else []
    return TrainConfig.from_args(["--arch", arch, "--dataroot", dataroot, "--batch_size", str(batch_size),
                           "--preprocess", "resize_and_crop", "--num_threads", str(min(4, os.cpu_count() or 1)),
                                  *size, *net, *extra]).resolve()


def batches(opt, device: torch.device, data: str, n: int, out=None):
    """n batches: the same few batches kept on the device, or fresh ones from a loader (DALI writes
    them into `out`'s tensors, a CUDA graph's inputs, when given)."""
    dataset = training_dataset(opt)
    batch_size, workers = opt.data.batch_size, opt.data.num_threads
    if data == "dali":
        loader = DaliLoader(dataset, batch_size=batch_size, shuffle=True, seed=0, device=device,
                            num_threads=2, channels_last=opt.speed.channels_last)
        epochs = range(1, 2 + n * batch_size // len(dataset))
        return (b for e in epochs for b in loader.epoch(e, out=out))
    loader = create_loader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                           seed=0, epoch=1, pin_memory=device.type == "cuda")
    if data == "device":
        cached = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
                  for _, b in zip(range(4), loader)]
        return [cached[i % len(cached)] for i in range(n)]
    epochs = []
    while sum(len(e) for e in epochs) < n:  # enough epochs of the loader for the run
        epochs.append(create_loader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                    seed=0, epoch=len(epochs) + 1, pin_memory=device.type == "cuda"))
    return (b for e in epochs for b in prefetch_to_device(e, device))


def original_step(method):
    """The original release's loop over copies of the same networks."""
    o, arch = method.model, "cyclegan" if "G_A" in method.nets else "pix2pix"
    if arch == "cyclegan":
        blocks = int(o.netG.split("_")[1][0])
        nets = {k: orig.ResnetGenerator(3, 3, o.ngf, o.norm, False, blocks) for k in ("G_A", "G_B")}
        nets |= {k: orig.NLayerDiscriminator(3, o.ndf, 3, o.norm) for k in ("D_A", "D_B")}
    else:
        downs = {"unet_256": 8, "unet_128": 7}[o.netG]
        nets = {"G": orig.UnetGenerator(3, 3, downs, o.ngf, o.norm, True),
                "D": orig.NLayerDiscriminator(6, o.ndf, 3, o.norm)}
    for name, net in nets.items():
        net.load_state_dict(to_original(method.nets[name]))
        net.to(method.device)
    loop = orig.CycleGANLoop(**nets, pool_size=method.loss.pool_size) if arch == "cyclegan" else \
        orig.Pix2PixLoop(**nets)
    return lambda batch: loop.optimize(batch["A"].to(method.device), batch["B"].to(method.device))


def flops_per_iteration(method, batch) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        method.step(batch)
    return float(counter.get_total_flops())


def bf16_matmul_peak(device: torch.device) -> float | None:
    """FLOP/s of a large bf16 matmul on this device: the ceiling for model FLOP utilisation."""
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * reps / (time.perf_counter() - start)


def measure(step, data, warmup: int, steps: int, device: torch.device) -> tuple[float, float | None]:
    """(iterations/s, peak memory in GiB) of `step` over `steps` batches after `warmup` more."""
    data = iter(data)
    for _ in range(warmup):
        step(next(data))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step(next(data))
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return steps / elapsed, peak


def run_config(arch: str, batch_size: int, name: str, extra: list[str] | None, dataroot: str,
               args: argparse.Namespace, device: torch.device, peak_flops: float | None, flops: dict) -> dict:
    """One row: `extra` None is the original loop, else pyi2i with those options. `flops` keeps the
    FLOPs of one iteration per (arch, batch), counted once."""
    opt = training_opt(arch, batch_size, args.tiny, dataroot, extra or ["--impl", "ref"])
    torch.manual_seed(0)
    method = build_method(opt, device)
    n = args.warmup + args.steps + 1
    step = original_step(method) if extra is None else CudaGraphStep(method) if opt.speed.cuda_graphs else method.step
    data = batches(opt, device, args.data, n, out=step.input_buffers if isinstance(step, CudaGraphStep) else None)
    if args.data == "device" and (arch, batch_size) not in flops:
        flops[arch, batch_size] = flops_per_iteration(method, data[0])
    its, peak = measure(step, data, args.warmup, args.steps, device)
    count = flops.get((arch, batch_size))
    mfu = count * its / peak_flops if count and peak_flops else None
    return dict(status="ok", size=opt.data.crop_size, its=its, ms=1e3 / its, images_per_s=its * batch_size,
                peak_gib=peak, flops_per_iter=count, mfu=mfu)


def main(argv=None) -> list[dict]:
    args = options(argv)
    device = torch.device(args.device)
    env = _common.environment(args.device)
    peak_flops = bf16_matmul_peak(device)
    configs = [("original loop", None)] + CONFIGS
    if args.configs:
        configs = [c for c in configs if c[0] in args.configs]
    elif device.type != "cuda":  # inductor's CPU build of these networks takes minutes
        configs = [c for c in configs if c[0] != "torch.compile"]
    root = Path("datasets") / "bench"
    rows, flops = [], {}
    for arch in args.archs:
        kind = "unpaired" if arch == "cyclegan" else "paired"
        dataroot = str(ensure_demo(root / kind, kind, size=64 if args.tiny else 256, n_train=64, n_test=4))
        for batch_size in args.batch_sizes:
            for name, extra in configs:
                row = dict(bench="train", arch=arch, config=name, batch=batch_size, data=args.data, **env)
                rows.append(row)
                if device.type != "cuda" and name in NEEDS_CUDA:
                    row["status"] = "skipped: needs a CUDA device"
                else:
                    try:
                        row.update(run_config(arch, batch_size, name, extra, dataroot, args, device, peak_flops,
                                              flops))
                    except Exception as e:  # noqa: BLE001 - a failed row is reported, and fails the run
                        row["status"] = _common.failure(e)
                if row["status"] != "ok":
                    print(f"{arch:8s} b{batch_size:<3d} {name:18s} {row['status']}", flush=True)
                    continue
                print(f"{arch:8s} b{batch_size:<3d} {name:18s} {row['ms']:9.2f} ms/it {row['images_per_s']:8.1f} img/s",
                      flush=True)
    add_speedups(rows)
    if args.save:
        _common.append_rows("train", rows)
    print(f"\ntraining step on {env['device']} (torch {env['torch']}, commit {env['commit']}, data on "
          f"{args.data}, bf16 matmul peak {peak_flops / 1e12 if peak_flops else float('nan'):.0f} TFLOP/s)\n")
    print(table(rows))
    return rows


def add_speedups(rows: list[dict]) -> None:
    """Each timed row's `speedup`: its it/s over the original loop's at the same arch and batch in
    this run (None without one)."""
    base = {(r["arch"], r["batch"]): r["its"] for r in rows if r["config"] == "original loop" and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok":
            original = base.get((r["arch"], r["batch"]))
            r["speedup"] = r["its"] / original if original else None


def table(rows: list[dict]) -> str:
    lines = ["| arch | batch | config | ms/it | it/s | images/s | peak GiB | MFU | vs original loop |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['arch']} | {r['batch']} | {r['config']} | {_common.cell(r['status'])} "
                         "| - | - | - | - | - |")
            continue
        mem = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        ratio = f"{r['speedup']:.2f}x" if r["speedup"] is not None else "-"
        lines.append(f"| {r['arch']} | {r['batch']} | {r['config']} | {r['ms']:.2f} | {r['its']:.2f} | "
                     f"{r['images_per_s']:.1f} | {mem} | {mfu} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    _common.finish(main())
