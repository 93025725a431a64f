"""The one prepared check for a lent GPU: ceilings, the sm_90 build, the GPU tests, the kernel and
training benchmarks, the loader, and a profile, in one command within a time budget.

    python bench/gpu_check.py                     # on the GPU machine (about 7 minutes)
    python bench/gpu_check.py --budget_s 300      # stop cleanly after 5 minutes, keeping what ran
    python bench/gpu_check.py --dry-run           # the same steps on the CPU, tiny shapes, into a temporary folder

Installs nothing: it runs over the machine's own torch, Triton and Python (3.10 or later) with pyi2i
installed by `pip install --no-deps --no-build-isolation -e .`; DALI rows are skipped when DALI is
not installed. Steps, in order, each printed as it starts and ends:

1. ceilings: device-to-device copy bandwidth and bf16 matmul TFLOP/s (recorded in every row);
2. the C++/CUDA extension built for the device (sm_90 on an H100/H200) as the ops build it;
3. the GPU tests: every test that skips without a CUDA device or is marked `gpu` (pytest -m gpu
   after bench/gpu_tests.py marks them), whatever fails;
4. the kernel benchmarks against PyTorch: norm + activation, the losses, the conv block;
5. the training step, CycleGAN and pix2pix at batch 1 and 16: the original-style loop, eager fp32,
   AMP, AMP + fused ops, AMP + CUDA graphs, in the same run on the same batches;
6. the loader benchmark, and the training step fed by the torch loader (and DALI where installed);
7. a short torch.profiler profile of the fastest training configuration.

Rows go to <out>/<kind>.jsonl (appended) and <kind>.md (this run's table) for kind in train,
loader, norm, loss and conv, where <out> is bench/results (a temporary folder with --dry-run; or
--out). Each row records the device as torch names it, the torch, Triton and CUDA versions, the
commit and the date. Exits non-zero when a step or a row failed; a step the budget leaves no time
for is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import _common  # noqa: E402  (first of the bench modules: without a GPU it sets TRITON_INTERPRET)

KINDS = ("train", "loader", "norm", "loss", "conv", "translate")


class Check:
    """The run's state: where rows go, the time left, and each step's outcome."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget_s
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.env = _common.environment(self.device)
        self.ceilings: dict = {}
        self.rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        self.tables: dict[str, list[str]] = {kind: [] for kind in KINDS}
        self.steps: list[tuple[str, str]] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, number: int, title: str, need_s: float, fn) -> None:
        """Runs one step unless less than `need_s` of the budget is left; a step that raises is
        FAILED and the check goes on."""
        name = f"{number}. {title}"
        if self.left() < need_s:
            status = f"skipped: time budget ({max(0.0, self.left()):.0f} s left, the step needs about {need_s:.0f} s)"
            print(f"\n== {name}: {status}", flush=True)
            self.steps.append((name, status))
            return
        print(f"\n== {name} ({self.left():.0f} s of the budget left)", flush=True)
        start = time.monotonic()
        try:
            status = fn() or "ok"
        except Exception as e:  # noqa: BLE001 - a failed step is reported, and the check goes on
            traceback.print_exc()
            status = _common.failure(e)
        status = f"{status} ({time.monotonic() - start:.0f} s)"
        print(f"== {name}: {status}", flush=True)
        self.steps.append((name, status))

    def add(self, kind: str, rows: list[dict], table: str) -> str:
        """Keeps a bench's rows (with the ceilings) and its table, and writes the kind's files now,
        so a run cut short keeps what it measured."""
        rows = [row | self.env | self.ceilings for row in rows]
        self.rows[kind] += rows
        self.tables[kind].append(table)
        with open(self.out / f"{kind}.jsonl", "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        self.write_markdown(kind)
        failed = sum(r.get("status", "ok").startswith("FAILED") for r in rows)
        return f"FAILED: {failed} of {len(rows)} rows" if failed else "ok"

    def write_markdown(self, kind: str) -> None:
        e = self.env
        ceilings = ", ".join(f"{k} {v:.1f}" for k, v in self.ceilings.items() if v is not None) or "not measured"
        head = (f"# {kind}: {'CPU dry run (tiny shapes; times mean nothing)' if self.args.dry_run else 'GPU measured'}"
                f"\n\n{e['device']}; torch {e['torch']}, Triton {e['triton']}, CUDA {e['cuda']}; commit {e['commit']}; "
                f"{e['date']}; ceilings: {ceilings}\n")
        (self.out / f"{kind}.md").write_text(head + "\n" + "\n\n".join(self.tables[kind]) + "\n")

    def failed(self) -> bool:
        return any(status.startswith("FAILED") for _, status in self.steps)


# ---------------------------------------------------------------------------------------------
# The steps


def ceilings(check: Check) -> None:
    """Copy bandwidth (bytes read + written over the time of a large device-to-device copy) and the
    bf16 matmul rate, each the median of several timed runs on random data."""
    big = not check.args.dry_run
    n_bytes, size = (2 * 2**30, 8192) if big else (8 * 2**20, 256)
    device = torch.device(check.device)
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    copy_ms = _median_ms(lambda: dst.copy_(src), device)
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    mm_ms = _median_ms(lambda: a @ b, device)
    check.ceilings = dict(copy_gbps=2 * n_bytes / (copy_ms * 1e-3) / 1e9, bf16_tflops=2 * size**3 / (mm_ms * 1e-3) / 1e12)
    print(f"copy {check.ceilings['copy_gbps']:.1f} GB/s, bf16 matmul {check.ceilings['bf16_tflops']:.1f} TFLOP/s")


def _median_ms(fn, device: torch.device, repeats: int = 10) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2]


def build_extension(check: Check) -> str:
    """Builds (or loads from the build cache) the extension as the ops would: for the visible GPU's
    architecture (sm_90 on an H100/H200) unless TORCH_CUDA_ARCH_LIST says otherwise."""
    from pyi2i.ops import _cuda_ext

    with_cuda = check.device == "cuda"
    if with_cuda and _cuda_ext.cuda_toolkit()[0] is None:
        raise RuntimeError(f"cannot build the CUDA kernels: {_cuda_ext.cuda_toolkit()[1]}")
    module = _cuda_ext.build(with_cuda=with_cuda if with_cuda else None)
    arch = _cuda_ext.cuda_arch_list() if with_cuda else "no CUDA kernels are launched on a CPU"
    return f"ok: {module.__name__} ({arch})"


def gpu_tests(check: Check) -> str:
    """pytest over the GPU tests, in a process of its own, stopped when the budget runs short; each
    test's outcome is in the log (<out>/gpu_tests.log), also when stopped."""
    log = check.out / "gpu_tests.log"
    limit = max(30.0, min(check.left() - check.args.reserve_s, 240.0 if not check.args.dry_run else 300.0))
    cmd = [sys.executable, "-m", "pytest", "-v", "-rfE", "-p", "gpu_tests", "-m", "gpu", "-p", "no:cacheprovider",
           str(HERE.parent / "tests")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    print(" ".join(cmd[2:]), f"(at most {limit:.0f} s; log: {log})", flush=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env, cwd=HERE.parent)
        output, code = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        code = None
    log.write_text(output)
    counts = {word: sum(f" {word.upper()}" in line for line in output.splitlines() if "::" in line)
              for word in ("passed", "failed", "error", "skipped")}
    summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n) or "no test ran"
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            print(line[:300], flush=True)
    if code is None:
        return f"FAILED: stopped after {limit:.0f} s with {summary}"
    # 5: nothing selected, as on a machine whose tests need no GPU
    return f"ok: {summary}" if code in (0, 5) else f"FAILED: {summary}"


def kernel_benchmarks(check: Check) -> str:
    import conv_norm_act
    import gan_loss
    import instance_norm_act
    import l1_loss

    common = ["--no-save", "--modes", "full", "--providers", "ref", "triton", "cuda"]
    # the CPU runs Triton in its interpreter: one dtype and layout show the path works
    sizes = ["--dtypes", "bf16", "--layouts", "nchw"] if check.args.dry_run else ["--dtypes", "fp32", "bf16"]
    statuses = []
    for kind, module, args in [
        ("norm", instance_norm_act, common + sizes),
        ("loss", l1_loss, common + sizes),
        ("loss", gan_loss, common + sizes),
        ("conv", conv_norm_act, ["--no-save", "--modes", "full", "--providers", "ref", "cuda"] + sizes),
    ]:
        if check.left() < 10:
            statuses.append(f"stopped by the time budget before {module.__name__}")
            print(f"-- {module.__name__}: skipped: time budget", flush=True)
            continue
        print(f"-- {module.__name__} {' '.join(args)}", flush=True)
        rows = module.main(args)
        timing = [r for r in rows if r.get("mode") != "memory"]
        table = _common.markdown_table(timing)
        if module is conv_norm_act:
            table += "\n\n" + conv_norm_act.memory_table([r for r in rows if r.get("mode") == "memory"])
        statuses.append(check.add(kind, rows, f"## {module.__name__}\n\n{table}"))
    return next((s for s in statuses if s != "ok"), "ok")


TRAIN_CONFIGS = ["original loop", "pyi2i eager fp32", "+ bf16", "+ fused ops", "+ CUDA graphs"]


def training(check: Check) -> str:
    """Each (arch, batch) is one run of bench/train.py, all its configurations on the same batches;
    the budget is checked between them."""
    import train

    dry = check.args.dry_run
    statuses = []
    for arch in ("cyclegan", "pix2pix"):
        for batch in ("1", "2") if dry else ("1", "16"):
            if check.left() < 20:
                statuses.append(f"stopped by the time budget before {arch} batch {batch}")
                print(f"-- {arch} b{batch}: skipped: time budget", flush=True)
                continue
            args = ["--no-save", "--archs", arch, "--batch_sizes", batch, "--configs", *TRAIN_CONFIGS]
            args += ["--tiny", "--steps", "1", "--warmup", "1"] if dry else ["--steps", "20", "--warmup", "5"]
            rows = train.main(args)
            statuses.append(check.add("train", rows, f"## {arch}, batch {batch}, batches on the device\n\n"
                                                     f"{train.table(rows)}"))
    return next((s for s in statuses if s != "ok"), "ok")


def loader(check: Check) -> str:
    import loader as loader_bench
    import train
    from pyi2i.data import dali

    dry = check.args.dry_run
    args = ["--no-save"] + (["--samples", "6", "--warmup", "1", "--workers", "1", "--threads", "1"] if dry else
                            ["--samples", "60", "--warmup", "5", "--workers", "2", "4", "--threads", "2"])
    rows = loader_bench.main(args)
    if dali.unavailable_reason() is not None:
        print("DALI: skipped: DALI not installed", flush=True)
        for r in rows:
            if r["loader"] == "dali":
                r["status"] = "skipped: DALI not installed"
    statuses = [check.add("loader", rows, f"## data loading alone\n\n{loader_bench.table(rows, None)}")]
    # The torch loader (and DALI) feeding the training step: batches arrive through the loader.
    config = "pyi2i eager fp32" if dry else "+ CUDA graphs"
    feeds = ["loader"] + (["dali"] if dali.unavailable_reason() is None else [])
    for data in feeds:
        args = ["--no-save", "--archs", "cyclegan", "--batch_sizes", "1", "--data", data, "--configs", config]
        args += ["--tiny", "--steps", "2", "--warmup", "1"] if dry else ["--steps", "50", "--warmup", "10"]
        rows = train.main(args)
        statuses.append(check.add("loader", rows, f"## training step fed by --data {data}\n\n{train.table(rows)}"))
    if len(feeds) == 1:
        check.add("loader", [dict(bench="train", arch="cyclegan", config=config, batch=1, data="dali",
                                  status="skipped: DALI not installed")],
                  "## training step fed by --data dali\n\nskipped: DALI not installed")
    return next((s for s in statuses if s != "ok"), "ok")


def profile(check: Check) -> str:
    """torch.profiler over a few steps of the fastest pyi2i configuration timed in step 5."""
    import train
    from pyi2i.engine.graphs import CudaGraphStep
    from pyi2i.engine.methods import build_method

    timed = [r for r in check.rows["train"] if r.get("status") == "ok" and r["config"] != "original loop"]
    if not timed:
        return "skipped: no training configuration ran"
    best = max(timed, key=lambda r: r["images_per_s"])
    extra = dict(train.CONFIGS)[best["config"]]
    dry = check.args.dry_run
    root = Path("datasets") / "bench"
    kind = "unpaired" if best["arch"] == "cyclegan" else "paired"
    dataroot = str(train.ensure_demo(root / kind, kind, size=64 if dry else 256, n_train=64, n_test=4))
    opt = train.training_opt(best["arch"], best["batch"], dry, dataroot, extra)
    device = torch.device(check.device)
    method = build_method(opt, device)
    step = CudaGraphStep(method) if opt.speed.cuda_graphs else method.step
    data = train.batches(opt, device, "device", 8, out=step.input_buffers if isinstance(step, CudaGraphStep) else None)
    for batch in data[:3]:
        step(batch)
    activities = [torch.profiler.ProfilerActivity.CPU] + \
        ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof:
        for batch in data[3:6]:
            step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    text = prof.key_averages().table(sort_by=sort, row_limit=25)
    (check.out / "profile.txt").write_text(f"{best['arch']} batch {best['batch']} {best['config']}\n\n{text}\n")
    print(text[:4000], flush=True)
    return f"ok: {best['arch']} b{best['batch']} {best['config']} -> {check.out / 'profile.txt'}"


def translate(check: Check) -> str:
    """Inference throughput (bench/translate.py) at 256 px, with the goal's configuration."""
    import translate as translate_bench

    args = ["--no-save", "--sizes", "256"] + (["--quick"] if check.args.dry_run else ["--images", "256"])
    rows = translate_bench.main(args)
    return check.add("translate", rows, f"## translate, resnet_9blocks\n\n{translate_bench.table(rows)}")


# ---------------------------------------------------------------------------------------------


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget_s", type=float, default=None,
                   help="stop starting steps after this many seconds (default: 420; 570 with --dry-run)")
    p.add_argument("--reserve_s", type=float, default=150,
                   help="time the GPU tests leave for the steps after them (default 150 s)")
    p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                   help="run every step on the CPU with tiny shapes, into a temporary folder")
    p.add_argument("--out", default=None, help="results folder (default: bench/results; a temporary one with --dry-run)")
    args = p.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 570 if args.dry_run else 420
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="pyi2i-gpu-check-") if args.dry_run else str(HERE / "results")
    return args


def main(argv=None) -> int:
    args = options(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run to check the script on the CPU", file=sys.stderr)
        return 1
    if args.dry_run and torch.cuda.is_available():
        print("--dry-run on a machine with a GPU still runs on it: set CUDA_VISIBLE_DEVICES= to stay on the CPU",
              file=sys.stderr)
    check = Check(args)
    e = check.env
    print(f"pyi2i GPU check on {e['device']}: torch {e['torch']}, Triton {e['triton']}, CUDA {e['cuda']}, "
          f"Python {sys.version.split()[0]}, commit {e['commit']}, {e['date']}; budget {args.budget_s:.0f} s; "
          f"results in {check.out}", flush=True)
    # Each step's need_s is what it takes at least; a step that cannot fit is skipped, not cut.
    check.step(1, "ceilings", 5, lambda: ceilings(check))
    check.step(2, "extension for sm_90", 20, lambda: build_extension(check))
    check.step(3, "GPU tests", 60, lambda: gpu_tests(check))
    check.step(4, "kernel benchmarks", 40, lambda: kernel_benchmarks(check))
    check.step(5, "training step", 60, lambda: training(check))
    check.step(6, "loader", 20, lambda: loader(check))
    check.step(7, "profile", 10, lambda: profile(check))
    check.step(8, "translate", 30, lambda: translate(check))
    print("\n| step | outcome |\n|---|---|")
    for name, status in check.steps:
        print(f"| {name} | {_common.cell(status)} |")
    print(f"\nresults: {', '.join(str(check.out / f'{k}.md') for k in KINDS if check.rows[k])}")
    return 1 if check.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
