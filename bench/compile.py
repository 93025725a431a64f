"""Ahead-of-time compile report: every GPU kernel pyi2i can launch, compiled for one GPU target with
no GPU present.

    python bench/compile.py --target sm_90                 # H100 / H200
    python bench/compile.py --target sm_90 --batch_sizes 1 4 16

Triton: the host code of each Triton backend is run on empty CPU tensors with every kernel launch
recorded instead of run, so each variant is exactly what that host code would launch (its launch
plan, the dtypes, NCHW or channels_last strides and Triton's own specialisation of the arguments:
integers equal to 1, 16-byte alignment). The tensors are those the built-in networks feed each op
(their layer shapes, found by running the networks on the meta device), in every dtype the ops take,
in both layouts, at the batch sizes asked for. Each distinct variant is compiled with
triton.compile for the target; registers and spills come from `ptxas -v` on its PTX, shared memory
from Triton's metadata.

CUDA: every csrc/**/*.cu is compiled by nvcc for the target with `--resource-usage`; every template
instance of every kernel is a row.

Prints a markdown table, one row per kernel x dtype x layout x launch configuration (variants that
compile to one binary are compiled once), and exits with 1 on any compile error or spill.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

# The kernels must be Triton JIT functions, not the CPU interpreter's: set before triton is imported.
os.environ["TRITON_INTERPRET"] = "0"

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
CUDA_DTYPES = {"float": "fp32", "c10::Half": "fp16", "c10::BFloat16": "bf16", "double": "fp64"}


@dataclass
class Row:
    """One compiled kernel variant. Resource fields stay None when the compile failed."""

    kernel: str
    dtype: str
    layout: str
    config: str
    source: str  # "triton" or the .cu file
    registers: int | None = None
    spill_bytes: int | None = None  # spill stores + spill loads, as ptxas reports them
    shared_bytes: int | None = None
    error: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.spill_bytes)


# ---------------------------------------------------------------------------------------------
# ptxas output


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def parse_ptxas(text: str) -> dict[str, dict]:
    """{mangled entry name: {registers, spill_bytes, stack_bytes, static_smem}} from `ptxas -v`
    (or nvcc --resource-usage) output."""
    kernels: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            current = kernels.setdefault(m.group(1), dict(registers=None, spill_bytes=0, stack_bytes=0, static_smem=0))
        elif current is not None and (m := _SPILLS.search(line)):
            current["stack_bytes"] = int(m.group(1))
            current["spill_bytes"] = int(m.group(2)) + int(m.group(3))
        elif current is not None and (m := _REGS.search(line)):
            current["registers"] = int(m.group(1))
            current["static_smem"] = int(m.group(2) or 0)
    return kernels


# ---------------------------------------------------------------------------------------------
# Triton


def _triton_tools():
    """(triton, GPUTarget, ASTSource, make_backend) across Triton 3.x."""
    import triton
    from triton.compiler import ASTSource

    try:
        from triton.backends.compiler import GPUTarget
    except ImportError:  # older 3.x
        from triton.compiler.compiler import GPUTarget
    try:
        from triton.compiler import make_backend
    except ImportError:
        from triton.compiler.compiler import make_backend
    return triton, GPUTarget, ASTSource, make_backend


@dataclass
class Launch:
    fn: object  # the JITFunction
    args: tuple
    kwargs: dict


class record_launches:
    """Within it, `kernel[grid](*args, **kwargs)` of any Triton JIT function is recorded, not run."""

    def __init__(self):
        from triton.runtime.jit import JITFunction

        self._cls = JITFunction
        self.launches: list[Launch] = []

    def __enter__(self):
        self._run = self._cls.run
        launches = self.launches

        def run(fn, *args, grid, warmup, **kwargs):
            launches.append(Launch(fn, args, kwargs))

        self._cls.run = run
        return self

    def __exit__(self, *exc):
        self._cls.run = self._run


def specialise(launch: Launch, backend) -> tuple[dict, dict, dict, dict]:
    """(options, signature, constexprs, attrs) of a launch, as Triton's launcher computes them.

    Uses the launcher's own binder (Triton >= 3.3); where that is missing, types and 16-byte
    divisibility are derived here the same way."""
    fn = launch.fn
    try:
        from triton.runtime.jit import create_function_from_signature

        binder = create_function_from_signature(fn.signature, fn.params, backend)
        bound, specialization, options = binder(*launch.args, **launch.kwargs)
        options, signature, constexprs, attrs = fn._pack_args(backend, launch.kwargs, bound, specialization, options)
        return options.__dict__, signature, constexprs, attrs
    except (ImportError, AttributeError, TypeError):
        return _specialise_by_hand(launch, backend)


def _specialise_by_hand(launch: Launch, backend) -> tuple[dict, dict, dict, dict]:
    fn = launch.fn
    names = fn.arg_names
    values = dict(zip(names, launch.args)) | {k: v for k, v in launch.kwargs.items() if k in names}
    options = {k: v for k, v in launch.kwargs.items() if k not in names}
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, param) in enumerate(zip(names, fn.params)):
        value = values.get(name, param.default)
        divisible = False
        if param.is_constexpr or value is None or (isinstance(value, int) and not isinstance(value, bool) and value == 1):
            signature[name], constexprs[(i,)] = "constexpr", value
            continue
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + {torch.float64: "fp64", **DTYPE_NAMES}[value.dtype]
            divisible = value.data_ptr() % 16 == 0
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
            divisible = value % 16 == 0
        else:
            signature[name] = "fp32"
        attrs[(i,)] = backend.parse_attr("D") if divisible else []
    return options, signature, constexprs, attrs


def _config(launch: Launch, constexprs: dict, options: dict) -> str:
    """The launch configuration: the constexpr values (the dtype and layout have their own columns)."""
    names = launch.fn.arg_names
    parts = [f"{names[key[0]]}={value}" for key, value in sorted(constexprs.items())
             if value is not None and not names[key[0]].endswith("_ptr")]
    return " ".join(parts + [f"num_warps={options.get('num_warps', 4)}"])


def _ptxas() -> str:
    import triton

    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    return str(bundled) if bundled.exists() else shutil.which("ptxas") or "ptxas"


def compile_triton(launch: Launch, arch: int, dtype: str, layout: str, cache: dict) -> Row:
    """Compiles one recorded launch for sm_<arch> (once per distinct variant) and reports it."""
    triton, GPUTarget, ASTSource, make_backend = _triton_tools()
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    options, signature, constexprs, attrs = specialise(launch, backend)
    row = Row(launch.fn.__name__, dtype, layout, _config(launch, constexprs, options), "triton")
    key = (launch.fn.__name__, repr(sorted(signature.items())), repr(sorted(constexprs.items())),
           repr(sorted(attrs.items())), repr(sorted((k, v) for k, v in options.items() if k == "num_warps")))
    if key in cache:
        row.registers, row.spill_bytes, row.shared_bytes, row.error = cache[key]
        return row
    start = time.perf_counter()
    try:
        kernel = triton.compile(ASTSource(launch.fn, signature, constexprs, attrs), target=target, options=options)
        row.shared_bytes = kernel.metadata.shared
        row.registers, row.spill_bytes = _ptx_resources(kernel.asm["ptx"], kernel.metadata.name)
    except Exception as e:  # noqa: BLE001 - a compile error is a row of the report, not the end of it
        row.error = f"{type(e).__name__}: {_first_line(str(e))}"
    row.seconds = time.perf_counter() - start
    cache[key] = (row.registers, row.spill_bytes, row.shared_bytes, row.error)
    return row


def _ptx_resources(ptx: str, name: str) -> tuple[int, int]:
    """(registers, spill bytes) of a kernel's PTX by `ptxas -v` for the target the PTX names."""
    arch = re.search(r"^\.target\s+(sm_\w+)", ptx, re.M).group(1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        r = subprocess.run([_ptxas(), "-v", f"--gpu-name={arch}", str(src), "-o", str(Path(tmp) / "kernel.cubin")],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ptxas failed: {_first_line(r.stderr)}")
    info = parse_ptxas(r.stdout + r.stderr).get(name)
    if info is None:
        raise RuntimeError(f"ptxas reported no entry {name!r}")
    return info["registers"], info["spill_bytes"]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no message)"])[0][:200]


# ---------------------------------------------------------------------------------------------
# What the engine launches


@dataclass(frozen=True)
class NormCall:
    shape: tuple[int, ...]
    act: str
    residual: bool
    affine: bool


def network_calls(batch_sizes: list[int], crop: int = 256) -> tuple[set[NormCall], set[tuple], set[tuple]]:
    """The fused ops' inputs in every built-in network with instance norm: (norm calls, l1 image
    shapes, GAN-loss prediction shapes). The networks run on the meta device with each fused op
    replaced by a recorder that returns its reference's result."""
    from pyi2i import ops
    from pyi2i.models import DISCRIMINATORS, GENERATORS, define_D, define_G
    from pyi2i.ops.conv_norm_act import EPS, PADDING

    norms: set[NormCall] = set()
    preds: set[tuple] = set()
    real_norm, real_conv = ops.instance_norm_act, ops.conv_norm_act

    def norm(x, weight=None, bias=None, residual=None, act="none", eps=1e-5, impl="auto"):
        norms.add(NormCall(tuple(x.shape), act, residual is not None, weight is not None))
        return real_norm(x, weight, bias, residual=residual, act=act, eps=eps, impl="ref")

    def conv(x, weight, bias=None, *, stride, impl="auto"):
        y = torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=PADDING)
        return norm(y, act="leaky_relu", eps=EPS)

    ops.instance_norm_act, ops.conv_norm_act = norm, conv
    try:
        with torch.device("meta"), torch.no_grad():
            for n in batch_sizes:
                for netG in GENERATORS:
                    size = 128 if netG == "unet_128" else crop
                    define_G(netG, norm="instance", init=False)(torch.empty(n, 3, size, size))
                for netD in DISCRIMINATORS:
                    for channels in (3, 6):  # CycleGAN's D sees images, pix2pix's image pairs
                        preds.add(tuple(define_D(netD, channels, norm="instance", init=False)(
                            torch.empty(n, channels, crop, crop)).shape))
    finally:
        ops.instance_norm_act, ops.conv_norm_act = real_norm, real_conv
    if not norms or not preds:  # the networks no longer call the ops through pyi2i.ops: fix the recorder
        raise RuntimeError("no fused-op call was recorded from the networks; see network_calls()")
    images = {(n, 3, crop, crop) for n in batch_sizes}
    return norms, images, preds


def triton_launches(batch_sizes: list[int], target_programs: int) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """(dtype, layout, a forward and backward through a Triton backend) for every input the engine
    gives it. The backends' own entry points and autograd run, on empty CPU tensors."""
    from pyi2i.ops import gan_loss_triton, instance_norm_act_triton, l1_loss_triton

    # Row splitting depends on the device's size: plan for the target's, not this machine's.
    instance_norm_act_triton.TARGET_PROGRAMS = target_programs
    norms, images, preds = network_calls(batch_sizes)
    dtypes = list(DTYPE_NAMES)

    def empty(shape, dtype, layout="nchw"):
        return torch.empty(shape, dtype=dtype).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()

    def forward_backward(out, *inputs):
        torch.autograd.grad(out, [t for t in inputs if t is not None], torch.empty_like(out))

    for call in sorted(norms, key=repr):
        for dtype, layout in itertools.product(dtypes, LAYOUTS):
            def run(call=call, dtype=dtype, layout=layout):
                x = empty(call.shape, dtype, layout)
                w, b = (empty(call.shape[1:2], dtype) for _ in range(2)) if call.affine else (None, None)
                res = empty(call.shape, dtype, layout) if call.residual else None
                forward_backward(instance_norm_act_triton.instance_norm_act(x, w, b, res, call.act, 1e-5), x, w, b, res)
            yield DTYPE_NAMES[dtype], layout, run
    for shape in sorted(images):
        for x_dtype, y_dtype in itertools.product(dtypes, dtypes):  # autocast mixes a low dtype with fp32
            def run(shape=shape, x_dtype=x_dtype, y_dtype=y_dtype):
                x, y = empty(shape, x_dtype), empty(shape, y_dtype).detach()
                forward_backward(l1_loss_triton.l1_loss(x, y), x)
            yield f"{DTYPE_NAMES[x_dtype]}/{DTYPE_NAMES[y_dtype]}", "any", run
    for shape in sorted(preds):
        for dtype, mode, real in itertools.product(dtypes, gan_loss_triton.MODES, (True, False)):
            def run(shape=shape, dtype=dtype, mode=mode, real=real):
                pred = empty(shape, dtype)
                forward_backward(gan_loss_triton.gan_loss(pred, real, mode), pred)
            yield DTYPE_NAMES[dtype], "any", run


def triton_rows(arch: int, batch_sizes: list[int], target_programs: int, progress: bool = True) -> list[Row]:
    rows, cache, seen = [], {}, set()
    for dtype, layout, run in triton_launches(batch_sizes, target_programs):
        with record_launches() as recorded:
            run()
        for launch in recorded.launches:
            row = compile_triton(launch, arch, dtype, layout, cache)
            key = (row.kernel, row.dtype, row.layout, row.config)
            if key in seen:
                continue
            seen.add(key)
            rows.append(row)
            if progress and row.seconds:
                print(f"  compiled {row.kernel} {row.dtype} {row.layout} {row.config} in {row.seconds:.1f} s",
                      file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# CUDA


def cuda_include_paths() -> list[str]:
    from torch.utils import cpp_extension

    try:
        paths = cpp_extension.include_paths(device_type="cuda")
    except TypeError:  # torch before 2.6
        paths = cpp_extension.include_paths(cuda=True)
    return [*paths, str(CSRC)]


def nvcc() -> str:
    from pyi2i.ops._cuda_ext import cuda_toolkit

    home, why = cuda_toolkit()
    if home is None:
        raise RuntimeError(why)
    return str(Path(home) / "bin" / "nvcc")


def demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if tool is None:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def cuda_row(source: str, mangled: str, demangled: str, info: dict) -> Row:
    """A row for one template instance, from `void ns::kernel<T, VEC, kCL>(params)`: the kernel's
    name, its dtype argument, its one bool argument as the layout (the kernels' channels_last
    switch) and the other arguments as the configuration."""
    text = re.sub(r"^void ", "", demangled.replace("(anonymous namespace)::", ""))
    head = text.split("(")[0]
    name, _, template = head.partition("<")
    args = [a.strip() for a in re.split(r",(?![^<]*>)", template[:-1])] if template else []
    dtype = next((CUDA_DTYPES[a] for a in args if a in CUDA_DTYPES), "-")
    bools = [a for a in args if a in ("true", "false")]
    layout = {"true": "channels_last", "false": "nchw"}[bools[0]] if len(bools) == 1 else "-"
    config = ", ".join(a.split("::")[-1] for a in args if a not in CUDA_DTYPES and a not in bools) or "-"
    return Row(name.split("::")[-1] or mangled, dtype, layout, config, source, info["registers"], info["spill_bytes"],
               info["static_smem"])


def cuda_rows(sm: str) -> list[Row]:
    """One row per kernel instance of every csrc/**/*.cu, compiled by nvcc for `sm`; a file that
    fails to compile is one error row."""
    rows = []
    try:
        compiler, includes = nvcc(), cuda_include_paths()
    except RuntimeError as e:
        return [Row("(nvcc)", "-", "-", "-", "csrc", error=str(e))]
    for cu in sorted(CSRC.rglob("*.cu")):
        source = str(cu.relative_to(ROOT))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([compiler, f"-arch={sm}", "--resource-usage", "-O3", "--expt-relaxed-constexpr",
                                "-std=c++17", "-DPYI2I_WITH_CUDA", *(f"-I{p}" for p in includes),
                                "-c", str(cu), "-o", str(Path(tmp) / "out.o")], capture_output=True, text=True)
        print(f"  nvcc {source} in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        if r.returncode != 0:
            rows.append(Row(cu.stem, "-", "-", "-", source, error=_first_line(r.stderr + r.stdout)))
            continue
        kernels = parse_ptxas(r.stdout + r.stderr)
        names = demangle(list(kernels))
        rows += [cuda_row(source, m, names[m], info) for m, info in kernels.items()]
        if not kernels:
            rows.append(Row(cu.stem, "-", "-", "-", source, error="nvcc reported no kernel"))
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def table(rows: list[Row]) -> str:
    num = lambda v: "-" if v is None else str(v)  # noqa: E731
    lines = ["| kernel | source | dtype | layout | config | registers | spill bytes | shared bytes | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        status = f"FAILED: {r.error}" if r.error else "FAILED: spills" if r.spill_bytes else "ok"
        lines.append(f"| {r.kernel} | {r.source} | {r.dtype} | {r.layout} | {r.config} | {num(r.registers)} | "
                     f"{num(r.spill_bytes)} | {num(r.shared_bytes)} | {status.replace('|', '/')} |")
    return "\n".join(lines)


def exit_code(rows: list[Row]) -> int:
    """1 when any kernel failed to compile or spills, or nothing was compiled; else 0."""
    return 1 if not rows or any(r.failed for r in rows) else 0


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="sm_90", help="GPU architecture, sm_<major><minor> (default: sm_90)")
    p.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 16])
    p.add_argument("--sms", type=int, default=132, help="the target's multiprocessors, for row splitting "
                   "(default: 132, an H100/H200 SXM)")
    p.add_argument("--skip", nargs="*", choices=("triton", "cuda"), default=[])
    args = p.parse_args(argv)
    if not re.fullmatch(r"sm_\d+a?", args.target):
        p.error(f"--target must look like sm_90, got {args.target!r}")
    return args


def main(argv=None) -> int:
    args = options(argv)
    arch = int(re.sub(r"\D", "", args.target))
    start = time.perf_counter()
    rows = []
    if "triton" not in args.skip:
        print(f"compiling the Triton kernels for {args.target}...", file=sys.stderr, flush=True)
        rows += triton_rows(arch, args.batch_sizes, 2 * args.sms)
    if "cuda" not in args.skip:
        print(f"compiling csrc/ for {args.target}...", file=sys.stderr, flush=True)
        rows += cuda_rows(args.target)
    failed = sum(r.failed for r in rows)
    print(f"\n{len(rows)} kernel variants for {args.target} (torch {torch.__version__}, "
          f"triton {_triton_tools()[0].__version__}, batch sizes {args.batch_sizes}) in "
          f"{time.perf_counter() - start:.0f} s: {failed} failed\n")
    print(table(rows))
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
