"""Data loading throughput: the torch loader (PIL in worker processes) against the DALI loader.

    python bench/loader.py                        # every row this machine can run
    python bench/loader.py --samples 400 --save   # more samples; append the rows to results/loader.jsonl

CycleGAN's unaligned layout at its default preprocessing (resize to 286, random 256 crop, flip),
from JPEG files of about 512x512 generated once under datasets/bench/loader_jpeg/. Each sample is
two decoded images (A and B); batch 1, as CycleGAN trains. Rows: the torch loader with 1, 2 and 4
workers (batches copied to the GPU when there is one, as in training); DALI in CPU mode with 1 and
2 threads; DALI in GPU mode (decoding on the GPU) with 1 and 2 threads where there is a GPU.

Reported: samples/s (training steps it can feed at batch 1), decoded images/s, and CPU cores used:
the CPU time of this process and of its finished worker processes over the wall time. The first
batches (pipeline build, worker start-up) are left out of the timing.

Target on an H100: DALI GPU mode feeds a batch-1 CycleGAN step with CUDA graphs at least twice as
fast as it runs, on at most 2 CPU cores. Pass the step time measured by
`python bench/train.py --archs cyclegan --batch_sizes 1 --configs "+ CUDA graphs"` as --step_ms to
have that ratio printed; `bench/train.py --data dali` measures the fed step directly.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from pyi2i.config import TrainConfig  # noqa: E402
from pyi2i.data import create_loader  # noqa: E402
from pyi2i.data import dali  # noqa: E402
from pyi2i.engine.batches import training_dataset  # noqa: E402
from pyi2i.engine.graphs import prefetch_to_device  # noqa: E402


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=200, help="samples per domain in the generated data set")
    p.add_argument("--warmup", type=int, default=10, help="batches left out of the timing")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4], help="torch loader worker counts")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="DALI thread counts")
    p.add_argument("--step_ms", type=float, help="a training step's time, to print each row's feed ratio")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=None,
                   help="append rows to bench/results/loader.jsonl (default: on a GPU only)")
    args = p.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.save = args.device == "cuda" if args.save is None else args.save
    return args


def photo(rng: np.random.Generator, size: int = 512) -> Image.Image:
    """A photograph-like image: smooth colour fields, edges and grain, which JPEG stores in ~50 KB."""
    coarse = rng.uniform(0, 255, (12, 12, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = 40 * np.sin(xx / rng.uniform(4, 30) + yy / rng.uniform(4, 30))[..., None]
    grain = rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img + stripes + grain, 0, 255).astype(np.uint8))


def jpeg_dataset(root: Path, samples: int) -> Path:
    """trainA/ and trainB/ of `samples` JPEGs each (made once; sizes vary a little around 512)."""
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        folder = root / f"train{side}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(samples):
            path = folder / f"{i:05d}.jpg"
            if not path.exists():
                img = photo(rng)
                w, h = int(rng.integers(480, 545)), int(rng.integers(480, 545))
                img.resize((w, h), Image.BICUBIC).save(path, quality=90)
    return root


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the torch loader's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(make_batches, warmup: int, device: torch.device) -> dict:
    """samples/s and cores used over all batches after the first `warmup`."""
    batches = iter(make_batches())
    for _ in range(warmup):
        next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu, samples = time.perf_counter(), cpu_seconds(), 0
    for batch in batches:
        samples += len(batch["A_paths"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    del batches  # the torch loader's workers end here, so their CPU time is counted
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return dict(samples_per_s=samples / wall, images_per_s=2 * samples / wall, cores=cpu / wall, samples=samples)


def main(argv=None) -> list[dict]:
    args = options(argv)
    device = torch.device(args.device)
    env = _common.environment(args.device)
    root = jpeg_dataset(Path("datasets") / "bench" / "loader_jpeg", args.samples)
    opt = TrainConfig.from_args(["--arch", "cyclegan", "--dataroot", str(root), "--num_threads", "1"]).resolve()
    dataset = training_dataset(opt)
    rows = []

    def row(loader: str, mode: str, workers: int, make_batches) -> None:
        rows.append(dict(bench="loader", loader=loader, mode=mode, workers=workers, size=opt.data.crop_size, **env))
        try:
            result = measure(make_batches, args.warmup, device)
        except Exception as e:  # noqa: BLE001 - a failed row is reported, and fails the run
            rows[-1]["status"] = _common.failure(e)
            print(f"{loader:6s} {mode:4s} x{workers}: {rows[-1]['status']}", flush=True)
            return
        rows[-1].update(status="ok", **result)
        print(f"{loader:6s} {mode:4s} x{workers}: {result['samples_per_s']:8.1f} samples/s "
              f"{result['images_per_s']:8.1f} images/s on {result['cores']:.2f} cores", flush=True)

    for workers in args.workers:
        def torch_batches(workers=workers):
            loader = create_loader(dataset, batch_size=1, shuffle=True, num_workers=workers, seed=0, epoch=1,
                                   pin_memory=device.type == "cuda")
            return prefetch_to_device(loader, device)
        row("torch", "cpu", workers, torch_batches)

    reason = dali.unavailable_reason()
    if reason:
        print(f"skipped DALI: {reason}")
        rows.append(dict(bench="loader", loader="dali", mode="-", workers=None, size=opt.data.crop_size,
                         status=f"skipped: {reason}", **env))
    modes = [("cpu", torch.device("cpu"))] + ([("gpu", device)] if device.type == "cuda" else [])
    for mode, dali_device in modes if not reason else []:
        for threads in args.threads:
            loader = dali.DaliLoader(dataset, batch_size=1, shuffle=True, seed=0, device=dali_device,
                                     num_threads=threads)
            row("dali", mode, threads, lambda loader=loader: loader.epoch(1))

    if args.save:
        _common.append_rows("loader", rows)
    print(f"\nloading {len(dataset)} CycleGAN samples (2 JPEGs of ~512x512 each -> 256x256) on {env['device']} "
          f"(torch {env['torch']}, commit {env['commit']})\n")
    print(table(rows, args.step_ms))
    return rows


def table(rows: list[dict], step_ms: float | None) -> str:
    feeds = step_ms is not None
    lines = ["| loader | mode | workers/threads | samples/s | images/s | CPU cores |" + (" feed ratio |" if feeds else ""),
             "|---|---|---|---|---|---|" + ("---|" if feeds else "")]
    for r in rows:
        if r["status"] != "ok":
            workers = "-" if r["workers"] is None else r["workers"]
            lines.append(f"| {r['loader']} | {r['mode']} | {workers} | {_common.cell(r['status'])} | - | - |"
                         + (" - |" if feeds else ""))
            continue
        ratio = f" {r['samples_per_s'] * step_ms / 1e3:.1f}x |" if feeds else ""
        lines.append(f"| {r['loader']} | {r['mode']} | {r['workers']} | {r['samples_per_s']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['cores']:.2f} |{ratio}")
    return "\n".join(lines)


if __name__ == "__main__":
    _common.finish(main())
