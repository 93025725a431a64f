"""Building the C++/CUDA extension: the CUDA sources compile for real, for sm_80 and sm_90, on any
machine with torch built with CUDA and the toolkit (CUDA_HOME set to its root), GPU or not; the
kernels' results are checked by the op tests on a GPU. A failed build is raised, not hidden."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyi2i.ops import BackendUnavailable, _cuda_ext, instance_norm_act

ARCH_LIST = "8.0;9.0"
BUILD_TIMEOUT_S = 3600  # two architectures on a small machine take minutes

_, NO_TOOLKIT = _cuda_ext.cuda_toolkit()

# A fresh interpreter: this one may already hold the operators from another build, and a library
# registering the same operators twice fails to load.
BUILD = """
from pyi2i.ops import _cuda_ext
module = _cuda_ext.build(with_cuda=True)
print(_cuda_ext.has_cuda_kernels(), module.__file__)
"""


@pytest.mark.skipif(bool(NO_TOOLKIT), reason=f"cannot compile CUDA sources here: {NO_TOOLKIT}")
def test_cuda_sources_compile_for_sm80_and_sm90():
    env = dict(os.environ, TORCH_CUDA_ARCH_LIST=ARCH_LIST)
    result = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-6000:]
    has_cuda_kernels, library = result.stdout.split()[-2:]
    assert has_cuda_kernels == "True"
    build_rules = (Path(library).parent / "build.ninja").read_text()
    for arch in ("80", "90"):
        assert f"arch=compute_{arch},code=sm_{arch}" in build_rules


def test_build_error_is_raised(monkeypatch, tmp_path):
    (tmp_path / "bindings.cpp").write_text('#error "a deliberately broken source"\n')
    monkeypatch.setattr(_cuda_ext, "CSRC", tmp_path)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    with pytest.raises(RuntimeError, match="deliberately broken"):
        _cuda_ext.build(with_cuda=False)


def test_explicit_impl_raises_the_build_error(monkeypatch):
    # impl='auto' giving way past a failed build is tested in test_dispatch_fallback.py
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    error = RuntimeError("Error building extension 'pyi2i_C_x':\nbindings.cpp:1:2: error: a deliberately broken source")
    monkeypatch.setattr(_cuda_ext, "_extension", lambda: error)
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(BackendUnavailable, match="deliberately broken"):
        instance_norm_act(x, impl="cuda")
