"""The installed console scripts answer as `python -m` does: bad usage exits 2 with argparse's usage,
bad input exits 1 with a one-line message, never a traceback."""

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SCRIPTS: dict[str, str] = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]

# Per script: arguments naming input that is not there (TMP: an empty folder), and what the message says.
BAD_INPUT = {
    "pyi2i-train": (["--dataroot", "TMP/missing", "--no_progress"], "TMP/missing does not exist"),
    "pyi2i-translate": (["--checkpoint", "TMP/missing.pt", "--input", "TMP/in", "--output", "TMP/out"],
                        "checkpoint TMP/missing.pt does not exist"),
    "pyi2i-evaluate": (["--real", "TMP/missing", "--fake", "TMP/missing", "--no_lpips"], "TMP/missing"),
    "pyi2i-export": (["--checkpoint", "TMP/missing.pt", "--format", "onnx", "--output", "TMP/G.onnx"],
                     "TMP/missing.pt"),
    "pyi2i-datasets": (["combine_A_and_B", "--fold_A", "TMP/missing", "--fold_B", "TMP/B", "--fold_AB", "TMP/AB"],
                       "--fold_A TMP/missing is not a folder"),
    "pyi2i-test": (["--dataroot", "TMP", "--name", "nothing", "--checkpoints_dir", "TMP"],
                   "TMP/nothing/latest_net_G.pth not found"),
    "pyi2i-download": (["dataset", "facades", "--dest", "TMP"], "TMP/facades already exists"),
}


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs the script's target as the wrapper that pip installs does: sys.exit(function())."""
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; from {module} import {function}; sys.argv[0] = {name!r}; sys.exit({function}())"
    env = {k: v for k, v in os.environ.items() if k != "PYI2I_DEBUG"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_every_script_goes_through_the_cli_wrapper():
    assert set(SCRIPTS) == set(BAD_INPUT), "each script needs its bad-input case below"
    for name, target in SCRIPTS.items():
        module, function = target.split(":")
        assert function == "cli", f"{name} = {target!r} bypasses run_cli: point it at {module}:cli"
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_usage_exits_2_with_the_usage(name, tmp_path):
    r = run_script(name, ["--no_such_option"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "usage:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_exits_1_with_one_line(name, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "facades").mkdir()  # download refuses to replace it, before any network access
    args, message = BAD_INPUT[name]
    r = run_script(name, [a.replace("TMP", str(tmp_path)) for a in args], tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message.replace("TMP", str(tmp_path)) in last, r.stderr
