"""pytest plugin (`-p gpu_tests`, with bench/ on the path) that marks the tests needing a GPU as `gpu`,
so `pytest -p gpu_tests -m gpu` runs exactly those: the tests marked `gpu` already, those that skip
without a CUDA device (a skipif mark whose reason names CUDA or a GPU), and those of modules that
pick their device at import (`DEVICE = "cuda" if torch.cuda.is_available() else "cpu"`: the Triton
tests, compiled on a GPU; without one they would only run again in the interpreter, so they are
left out there)."""

import re

import pytest
import torch

NEEDS_GPU = re.compile(r"\bcuda\b|\bgpu\b", re.IGNORECASE)


def needs_gpu(item: pytest.Item) -> bool:
    if item.get_closest_marker("gpu") is not None:
        return True
    if torch.cuda.is_available() and getattr(getattr(item, "module", None), "DEVICE", None) == "cuda":
        return True
    return any(NEEDS_GPU.search(str(mark.kwargs.get("reason", ""))) for mark in item.iter_markers("skipif"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (run on a lent GPU by bench/gpu_check.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if needs_gpu(item):
            item.add_marker(pytest.mark.gpu)
