"""What the op benchmarks share: options, timing, GB/s from a byte count, result rows, the table.

A benchmark script (bench/<op>.py) names its providers, cases and bytes moved, and calls run().
Times are p20/p50/p80 in milliseconds: triton.testing.do_bench on a GPU (which clears the L2 cache
between runs); wall clock on CPU, where Triton runs in its interpreter, shapes are tiny, and the
numbers only show that the script works end to end. GB/s divides the bytes a mode must move at
least (each tensor read or written once) by the p50 time.

A row that raises is printed as FAILED with the error, in the table too, and the script exits
non-zero; a provider that cannot run here (its backend's unavailable_reason) is a skipped row that
says why.

Without a GPU this module sets TRITON_INTERPRET=1, so it must be imported before triton is.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

MODES = ("fwd", "bwd", "full")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CPU_REPEATS = 5


@dataclass
class Case:
    """One benchmarked configuration. `variant` names the op's own arguments (its activation, GAN
    mode, ...); `inputs()` builds fresh tensors, those to differentiate with requires_grad set;
    `bytes_moved(mode)` counts the least traffic the mode needs."""

    variant: str
    shape: tuple[int, ...]
    layout: str
    dtype: str
    inputs: Callable[[], list[torch.Tensor | None]]
    bytes_moved: Callable[[str], int]


def options(description: str, providers: Sequence[str], variants: Sequence[str], argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (always so without a GPU)")
    parser.add_argument("--variants", nargs="+", choices=list(variants), default=list(variants))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--providers", nargs="+", choices=list(providers), default=None,
                        help="default: all on a GPU; without one all but 'compile' (inductor's CPU build is slow)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=None,
                        help="append rows to bench/results/<op>.jsonl (default: on a GPU only)")
    args = parser.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.tiny = args.tiny or args.device == "cpu"
    if args.providers is None:
        args.providers = [p for p in providers if args.device == "cuda" or p != "compile"]
    if args.save is None:
        args.save = args.device == "cuda"
    return args


def in_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    return t.contiguous(memory_format=LAYOUTS[layout])


def grid(args: argparse.Namespace, shapes: Sequence[tuple[int, ...]], tiny_shapes: Sequence[tuple[int, ...]],
         layouts: Sequence[str] | None = None):
    """(variant, shape, layout, dtype) for every combination asked for."""
    for variant in args.variants:
        for shape in tiny_shapes if args.tiny else shapes:
            for layout in layouts or args.layouts:
                for dtype in args.dtypes:
                    yield variant, shape, layout, dtype


def _time_ms(fn: Callable[[], object], device: str) -> tuple[float, float, float]:
    if device == "cuda":
        import triton.testing

        return tuple(triton.testing.do_bench(fn, quantiles=[0.2, 0.5, 0.8]))
    fn()  # compile / first-launch costs stay out of the numbers
    times = []
    for _ in range(CPU_REPEATS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    pick = lambda q: times[round(q * (len(times) - 1))]  # noqa: E731
    return pick(0.2), pick(0.5), pick(0.8)


def _step(fn: Callable, inputs: list, mode: str) -> Callable[[], object]:
    """The work one timed call does for the mode: the forward, the backward of one forward kept
    alive, or both."""
    leaves = [t for t in inputs if t is not None and t.requires_grad]
    if mode == "fwd":
        return lambda: fn(*inputs)
    out = fn(*inputs)
    dy = torch.randn_like(out)
    if mode == "bwd":
        return lambda: torch.autograd.grad(out, leaves, dy, retain_graph=True)
    return lambda: torch.autograd.grad(fn(*inputs), leaves, dy)


def environment(device: str) -> dict:
    """Where and with what a row was measured."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, cwd=RESULTS.parent, check=True).stdout.strip()
        commit += "+changes" if changed else ""  # measured on a tree that differs from the commit
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    cpu = f"cpu ({platform.processor() or platform.machine()}), triton interpreter"
    return dict(
        device=torch.cuda.get_device_name() if device == "cuda" else cpu,
        torch=torch.__version__,
        triton=triton_version,
        cuda=torch.version.cuda,
        commit=commit,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def backend_unavailable(provider: str, x: torch.Tensor) -> str | None:
    """Why a provider's backend cannot run on x here, or None: 'triton' and 'cuda' ask their
    backend; the reference and torch.compile always run."""
    if provider == "triton":
        from pyi2i.ops._triton_util import unavailable_reason
    elif provider == "cuda":
        from pyi2i.ops._cuda_ext import unavailable_reason
    else:
        return None
    return unavailable_reason(x)


def failure(e: BaseException) -> str:
    """A row's status for an exception: FAILED and the error's first line."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return f"FAILED: {type(e).__name__}: {first}"


def exit_code(rows: list[dict]) -> int:
    """1 when a row failed (or nothing ran), else 0; skipped rows do not fail a run."""
    return 1 if not rows or any(r["status"].startswith("FAILED") for r in rows) else 0


def run(op: str, args: argparse.Namespace, providers: dict[str, Callable[[str], Callable]],
        cases: Sequence[Case]) -> list[dict]:
    """Times every provider (a function of the variant giving the function to time) on every case
    and mode, prints the table, appends the rows if asked, and returns them (each with a status:
    ok, FAILED: why, or skipped: why)."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)  # one graph a case
    torch._functorch.config.donated_buffer = False  # 'bwd' runs one compiled backward many times (retain_graph)
    env = environment(args.device)
    rows = []
    for case in cases:
        for mode in args.modes:
            for name in args.providers:
                row = dict(op=op, variant=case.variant, provider=name, mode=mode, layout=case.layout,
                           dtype=case.dtype, shape=list(case.shape), **env)
                rows.append(row)
                inputs = case.inputs()
                reason = backend_unavailable(name, inputs[0])
                if reason is not None:
                    row["status"] = f"skipped: {reason}"
                    print(f"skipped {name} {mode} {case.variant} {case.shape}: {reason}", flush=True)
                    continue
                try:
                    fn = providers[name](case.variant)
                    p20, p50, p80 = _time_ms(_step(fn, inputs, mode), args.device)
                except Exception as e:  # noqa: BLE001 - a failed row is reported, and fails the run
                    row["status"] = failure(e)
                    print(f"{row['status']} ({name} {mode} {case.variant} {case.shape} {case.layout} {case.dtype})",
                          flush=True)
                    continue
                nbytes = case.bytes_moved(mode)
                row.update(status="ok", ms_p20=p20, ms_p50=p50, ms_p80=p80, bytes=nbytes,
                           gbps=nbytes / (p50 * 1e-3) / 1e9)
                print(f"{case.variant:14s} {name:8s} {mode:4s} {str(case.shape):20s} {case.layout:13s} "
                      f"{case.dtype:4s} {p50:9.3f} ms {row['gbps']:8.1f} GB/s", flush=True)
    if args.save:
        append_rows(op, rows)
    print(f"\n{op} on {env['device']} (torch {env['torch']}, triton {env['triton']}, commit {env['commit']})\n")
    print(markdown_table(rows))
    return rows


def append_rows(name: str, rows: list[dict]) -> None:
    """Appends the rows to bench/results/<name>.jsonl."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{name}.jsonl", "a") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"appended {len(rows)} rows to {RESULTS / f'{name}.jsonl'}")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| variant | provider | mode | layout | dtype | shape | ms p50 (p20-p80) | GB/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        if r["status"] == "ok":
            timing = f"{r['ms_p50']:.3f} ({r['ms_p20']:.3f}-{r['ms_p80']:.3f}) | {r['gbps']:.1f}"
        else:
            timing = f"{cell(r['status'])} | -"
        lines.append(f"| {r['variant']} | {r['provider']} | {r['mode']} | {r['layout']} | {r['dtype']} | {shape} | "
                     f"{timing} |")
    return "\n".join(lines)


def cell(text: str) -> str:
    """text made safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "/")


def finish(rows: list[dict]) -> None:
    """Exits as the rows say: 1 with the count when any failed."""
    failed = [r for r in rows if r["status"].startswith("FAILED")]
    if failed or not rows:
        print(f"\n{len(failed)} of {len(rows)} rows FAILED" if rows else "\nno rows ran", file=sys.stderr)
    sys.exit(exit_code(rows))
