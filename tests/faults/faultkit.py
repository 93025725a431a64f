"""Helpers for the fault catalogue (tests/faults): tiny runs, in process or as a command."""

import subprocess
import sys

from conftest import training_argv, training_options

TINY = dict(max_dataset_size=2, eval_freq=0, no_tensorboard=True, print_freq=1)


def tiny_options(dataroot, checkpoints_dir, **overrides):
    """A run of 2 samples per epoch on 32x32 crops with 4-filter networks."""
    return training_options(dataroot, checkpoints_dir=checkpoints_dir, **{**TINY, **overrides})


def tiny_command(dataroot, checkpoints_dir, **overrides) -> list[str]:
    """`python -m pyi2i.train ...` for the same tiny run."""
    return [sys.executable, "-m", "pyi2i.train",
            *training_argv(dataroot, checkpoints_dir=checkpoints_dir, **{**TINY, **overrides})]


def run_command(cmd, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]
