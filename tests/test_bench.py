"""The benchmark scripts run end to end (tiny shapes, nothing saved); their numbers are not checked here."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script, *args, cwd=None):
    r = subprocess.run([sys.executable, str(BENCH / script), *args, "--no-save"], capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_train_bench_prints_its_table(tmp_path):
    out = run_bench("train.py", "--tiny", "--archs", "cyclegan", "--steps", "2", cwd=tmp_path)
    table = out[out.index("| arch |"):]
    assert "| cyclegan | 1 | original loop |" in table and "| cyclegan | 1 | pyi2i eager fp32 |" in table


@pytest.mark.parametrize("script, args", [
    ("instance_norm_act.py", ["--variants", "relu", "--modes", "full", "--dtypes", "fp32", "--layouts", "nchw"]),
    ("gan_loss.py", ["--variants", "lsgan", "--modes", "full", "--dtypes", "fp32", "--layouts", "nchw"]),
    ("l1_loss.py", ["--modes", "full", "--dtypes", "fp32", "--layouts", "nchw"]),
    ("conv_norm_act.py", ["--modes", "full", "--dtypes", "fp32", "--layouts", "nchw"]),
])
def test_op_bench_prints_its_table(script, args):
    pytest.importorskip("triton", reason="the op benchmarks time the Triton kernels")
    out = run_bench(script, *args)
    fast = "| cuda |" if script == "conv_norm_act.py" else "| triton |"
    assert "| ref |" in out and fast in out


def test_train_bench_feeds_through_dali(tmp_path):
    pytest.importorskip("nvidia.dali", reason="--data dali needs DALI")
    out = run_bench("train.py", "--tiny", "--archs", "cyclegan", "--steps", "2", "--data", "dali",
                    "--configs", "pyi2i eager fp32", cwd=tmp_path)
    assert "| cyclegan | 1 | pyi2i eager fp32 |" in out[out.index("| arch |"):]


def test_loader_bench_prints_its_table(tmp_path):
    out = run_bench("loader.py", "--samples", "6", "--warmup", "1", "--workers", "1", "--threads", "1",
                    "--step_ms", "8", cwd=tmp_path)
    table = out[out.index("| loader |"):]
    assert "| torch | cpu | 1 |" in table and "feed ratio" in table
    if "skipped DALI" not in out:
        assert "| dali | cpu | 1 |" in table
