"""The benchmark scripts run end to end (tiny shapes, nothing saved); their numbers are not checked
here. A row that fails is loud: FAILED with its reason in the table, and a non-zero exit."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import _common  # noqa: E402


def run_bench(script, *args, cwd=None):
    r = subprocess.run([sys.executable, str(BENCH / script), *args, "--no-save"], capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_train_bench_prints_its_table(tmp_path):
    out = run_bench("train.py", "--tiny", "--archs", "cyclegan", "--steps", "2", cwd=tmp_path)
    table = out[out.index("| arch |"):]
    rows = {line.split("|")[3].strip(): line for line in table.splitlines()[2:]}
    assert rows["original loop"].endswith("| 1.00x |")
    assert rows["pyi2i eager fp32"].split("|")[-2].strip().endswith("x")  # its ratio to the original loop
    if not torch.cuda.is_available():
        assert "| skipped: needs a CUDA device |" in rows["+ CUDA graphs"]


def _case(device="cpu"):
    return _common.Case("v", (2, 3), "nchw", "fp32", lambda: [torch.randn(2, 3, device=device, requires_grad=True)],
                        lambda mode: 24)


def test_a_failed_row_is_printed_as_failed_and_fails_the_run(capsys):
    args = argparse.Namespace(device="cpu", modes=["fwd"], providers=["ref", "broken"], save=False)
    providers = {"ref": lambda variant: torch.sin, "broken": lambda variant: lambda x: x.view(7)}
    rows = _common.run("op", args, providers, [_case()])
    assert [r["status"][:6] for r in rows] == ["ok", "FAILED"]
    table = capsys.readouterr().out
    broken = next(line for line in table.splitlines() if line.startswith("| v | broken |"))
    assert "FAILED: RuntimeError: shape '[7]' is invalid" in broken
    assert _common.exit_code(rows) == 1
    assert _common.exit_code(rows[:1]) == 0
    with pytest.raises(SystemExit) as exit:
        _common.finish(rows)
    assert exit.value.code == 1


def test_a_provider_that_cannot_run_here_is_skipped_with_its_reason(capsys):
    args = argparse.Namespace(device="cpu", modes=["fwd"], providers=["cuda"], save=False)
    rows = _common.run("op", args, {"cuda": lambda variant: torch.sin}, [_case(device="meta")])
    assert rows[0]["status"] == "skipped: it runs on CPU and CUDA tensors, not on meta"
    assert "| skipped: it runs on CPU and CUDA tensors, not on meta |" in capsys.readouterr().out
    assert _common.exit_code(rows) == 0


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


def test_gpu_check_stops_at_its_time_budget_and_writes_what_it_has(tmp_path, capsys):
    import gpu_check

    assert gpu_check.main(["--dry-run", "--budget_s", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("| step | outcome |"):].splitlines()[2:9]
    assert [line.split("|")[1].strip()[:2] for line in summary] == [f"{n}." for n in range(1, 8)]  # in order
    assert all("| skipped: time budget" in line for line in summary)  # none started
    check = gpu_check.Check(gpu_check.options(["--dry-run", "--out", str(tmp_path)]))
    assert check.add("loss", [dict(op="l1_loss", status="ok")], "| table |") == "ok"
    assert check.add("loss", [dict(op="gan_loss", status="FAILED: boom")], "| more |") == "FAILED: 1 of 1 rows"
    rows = [json.loads(line) for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert [r["op"] for r in rows] == ["l1_loss", "gan_loss"]
    for key in ("device", "torch", "triton", "cuda", "commit", "date"):
        assert all(key in r for r in rows), key
    markdown = (tmp_path / "loss.md").read_text()
    assert "| table |" in markdown and "| more |" in markdown and rows[0]["commit"] in markdown


def test_gpu_tests_plugin_selects_the_tests_that_need_a_gpu(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "@pytest.mark.skipif(True, reason='no CUDA device')\n"
        "def test_on_gpu(): pass\n"
        "@pytest.mark.gpu\n"
        "def test_marked(): pass\n"
        "def test_on_cpu(): pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "gpu_tests", "-m", "gpu", "-p",
                        "no:cacheprovider", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(BENCH)})
    assert "test_on_gpu" in r.stdout and "test_marked" in r.stdout and "test_on_cpu" not in r.stdout, r.stdout
