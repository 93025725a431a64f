"""bench/compile.py: reading ptxas' report, the table, and failing on a compile error or a spill."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import compile as report  # noqa: E402

PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z4fastPf' for 'sm_90'
ptxas info    : Function properties for _Z4fastPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 27 registers, used 1 barriers, 1024 bytes smem
ptxas info    : Compiling entry function '_Z5heavyPf' for 'sm_90'
ptxas info    : Function properties for _Z5heavyPf
    48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers
"""


def test_ptxas_report_is_read_per_kernel():
    kernels = report.parse_ptxas(PTXAS)
    assert kernels == {
        "_Z4fastPf": dict(registers=27, spill_bytes=0, stack_bytes=0, static_smem=1024),
        "_Z5heavyPf": dict(registers=255, spill_bytes=76, stack_bytes=48, static_smem=0),
    }


def test_a_spill_or_a_compile_error_fails_the_report():
    ok = report.Row("k", "fp32", "nchw", "BLOCK=16", "triton", registers=30, spill_bytes=0, shared_bytes=0)
    spilled = report.Row("k", "bf16", "nchw", "BLOCK=16", "triton", registers=255, spill_bytes=8, shared_bytes=0)
    broken = report.Row("k", "fp16", "nchw", "BLOCK=16", "triton", error="CompilationError: boom")
    assert report.exit_code([ok]) == 0
    assert report.exit_code([ok, spilled]) == 1
    assert report.exit_code([broken, ok]) == 1
    assert report.exit_code([]) == 1  # nothing compiled is no evidence
    lines = report.table([ok, spilled, broken]).splitlines()
    assert len(lines) == 5
    assert lines[2].endswith("| 30 | 0 | 0 | ok |")
    assert lines[3].endswith("| FAILED: spills |")
    assert lines[4].endswith("| FAILED: CompilationError: boom |")


def test_cuda_template_instances_become_rows():
    info = dict(registers=40, spill_bytes=0, static_smem=32)
    row = report.cuda_row("a.cu", "_Zx", "void pyi2i::(anonymous namespace)::bwd_sums_kernel<c10::BFloat16, 8, true>"
                          "(pyi2i::Params<c10::BFloat16>, float*)", info)
    assert (row.kernel, row.dtype, row.layout, row.config) == ("bwd_sums_kernel", "bf16", "channels_last", "8")
    row = report.cuda_row("a.cu", "_Zy", "void pyi2i::loss_grad_kernel<pyi2i::L1Loss, float, 4>(pyi2i::P<float>)", info)
    assert (row.kernel, row.dtype, row.layout, row.config) == ("loss_grad_kernel", "fp32", "-", "L1Loss, 4")


KERNELS = '''
import triton
import triton.language as tl


@triton.jit
def good_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) * 2, mask=offs < n)


@triton.jit
def spilling_kernel(x_ptr, y_ptr, BLOCK: tl.constexpr):
    # every element stays live across the sum: BLOCK / 32 fp32 values a thread at one warp
    x = tl.load(x_ptr + tl.arange(0, BLOCK))
    s = tl.reduce(x, 0, tl.standard._sum_combine)
    tl.store(y_ptr + tl.arange(0, BLOCK), x * s + x)


@triton.jit
def broken_kernel(x_ptr, BLOCK: tl.constexpr):
    tl.store(x_ptr + tl.arange(0, BLOCK), no_such_name)
'''

DRIVER = '''
import sys
sys.path.insert(0, sys.argv[1])
import compile as report  # sets TRITON_INTERPRET=0 before triton is imported
import torch
import kernels

x = torch.empty(8192)
rows = []
for fn, args, kwargs in [(kernels.good_kernel, (x, x, 100), dict(BLOCK=128)),
                         (kernels.spilling_kernel, (x, x), dict(BLOCK=8192, num_warps=1)),
                         (kernels.broken_kernel, (x,), dict(BLOCK=16))]:
    with report.record_launches() as recorded:
        fn[(1,)](*args, **kwargs)  # recorded, not run
    (launch,) = recorded.launches
    by_hand = report._specialise_by_hand(launch, report._triton_tools()[3](report._triton_tools()[1]("cuda", 90, 32)))
    native = report.specialise(launch, report._triton_tools()[3](report._triton_tools()[1]("cuda", 90, 32)))
    assert by_hand[1:3] == native[1:3], (by_hand, native)
    assert {k: v for k, v in by_hand[3].items() if v} == {k: v for k, v in native[3].items() if v}
    rows.append(report.compile_triton(launch, 90, "fp32", "any", {}))
print(report.table(rows))
sys.exit(report.exit_code(rows))
'''


def test_triton_kernels_compile_for_sm90_and_failures_are_reported(tmp_path):
    """Real compiles for sm_90 without a GPU, in a process of their own: the test session may run
    Triton in its interpreter, which has no compiler."""
    pytest.importorskip("triton", reason="the report compiles Triton kernels")
    (tmp_path / "kernels.py").write_text(KERNELS)
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    r = subprocess.run([sys.executable, "driver.py", str(BENCH)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in r.stdout.splitlines() if "_kernel" in line}
    assert rows["good_kernel"].endswith("| ok |")
    assert int(rows["good_kernel"].split("|")[6]) > 0  # registers read from ptxas
    assert rows["spilling_kernel"].endswith("| FAILED: spills |")
    assert "FAILED: CompilationError" in rows["broken_kernel"] and "no_such_name" in rows["broken_kernel"]
