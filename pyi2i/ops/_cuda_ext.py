"""The C++/CUDA extension behind the 'cuda' backends: builds or finds it, and loads it once.

The extension registers dispatcher operators `torch.ops.pyi2i_C.*` with kernels for CPU tensors
(C++, `at::parallel_for`) and, when built with CUDA, for CUDA tensors. It comes from one of:

- an ahead-of-time build, the module `pyi2i._C` (see csrc/README.md), used whenever importable;
- otherwise the sources in csrc/, compiled on first use by `torch.utils.cpp_extension.load` into a
  module named by a hash of the sources and the build configuration, so an unchanged tree loads
  from the cache and any change rebuilds. CUDA sources are compiled only when torch has CUDA and
  the toolkit (nvcc and its headers, under CUDA_HOME) is found; the build is CPU-only otherwise.

A failed build is not hidden: `unavailable_reason` reports it, so an explicit impl='cuda' raises
with it and impl='auto' warns once with it as it falls back.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch

from pyi2i.ops._layout import memory_format  # noqa: F401  the layout its kernels run in

NAMESPACE = "pyi2i_C"
PREBUILT_MODULE = "pyi2i._C"
CSRC = Path(__file__).resolve().parents[2] / "csrc"
DEFAULT_CUDA_ARCH_LIST = "8.0;9.0"  # A100 and H100, for builds on machines with no visible GPU
COMPILING_MESSAGE = "compiling pyi2i C++/CUDA ops (first use, takes a minute or two)..."
CFLAGS = ["-O3"]
CUDA_CFLAGS = ["-O3", "--expt-relaxed-constexpr"]


def cuda_toolkit() -> tuple[str | None, str]:
    """(CUDA_HOME, '') when CUDA sources can be compiled here, else (None, why not)."""
    if torch.version.cuda is None:
        return None, f"torch {torch.__version__} was built without CUDA"
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return None, "no CUDA toolkit was found (set CUDA_HOME to its root)"
    home = Path(CUDA_HOME)
    if not (home / "bin" / "nvcc").exists():
        return None, f"no nvcc under CUDA_HOME={home} (set CUDA_HOME to the toolkit's root)"
    if not (home / "include" / "cuda_runtime_api.h").exists():
        return None, f"no CUDA headers under CUDA_HOME={home}/include (set CUDA_HOME to the toolkit's root)"
    return CUDA_HOME, ""


def cuda_arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST if set, else the visible GPUs' architectures, else DEFAULT_CUDA_ARCH_LIST."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{major}.{minor}" for major, minor in sorted(caps))
    return DEFAULT_CUDA_ARCH_LIST


def sources(with_cuda: bool) -> list[Path]:
    suffixes = (".cpp", ".cu") if with_cuda else (".cpp",)
    return sorted(p for p in CSRC.rglob("*") if p.suffix in suffixes)


def _build_name(with_cuda: bool, arch_list: str) -> str:
    """The module name: a hash of the sources and headers compiled, and of what else makes the
    binary differ."""
    digest = hashlib.sha256()
    for path in sorted(sources(with_cuda) + [p for p in CSRC.rglob("*") if p.suffix in (".h", ".cuh")]):
        digest.update(str(path.relative_to(CSRC)).encode())
        digest.update(path.read_bytes())
    config = (torch.__version__, sys.version_info[:2], with_cuda, arch_list if with_cuda else "", CFLAGS, CUDA_CFLAGS)
    digest.update(repr(config).encode())
    return f"{NAMESPACE}_{digest.hexdigest()[:16]}"


@contextlib.contextmanager
def _environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(with_cuda: bool | None = None) -> ModuleType:
    """Compiles csrc/ (or loads it from the build cache) and imports it; raises on a build error."""
    from torch.utils import cpp_extension

    if not (CSRC / "bindings.cpp").exists():
        raise RuntimeError(f"pyi2i's C++/CUDA sources are not at {CSRC}: install pyi2i from its source tree "
                           "(pip install -e .) or build pyi2i._C ahead of time (csrc/README.md)")
    if with_cuda is None:
        with_cuda = cuda_toolkit()[0] is not None
    arch_list = cuda_arch_list() if with_cuda else ""
    name = _build_name(with_cuda, arch_list)
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    build_dir = Path(root) / name
    build_dir.mkdir(parents=True, exist_ok=True)
    if not (build_dir / f"{name}{cpp_extension.LIB_EXT}").exists():
        print(COMPILING_MESSAGE, file=sys.stderr, flush=True)
    defines = ["-DPYI2I_WITH_CUDA"] if with_cuda else []
    with _environ(TORCH_CUDA_ARCH_LIST=arch_list) if with_cuda else contextlib.nullcontext():
        return cpp_extension.load(
            name=name,
            sources=[str(p) for p in sources(with_cuda)],
            extra_cflags=CFLAGS + defines,
            extra_cuda_cflags=CUDA_CFLAGS + defines,
            extra_include_paths=[str(CSRC)],
            build_directory=str(build_dir),
            with_cuda=with_cuda,
            is_python_module=True,
        )


def _load() -> ModuleType:
    try:
        return importlib.import_module(PREBUILT_MODULE)
    except ModuleNotFoundError as e:
        if e.name != PREBUILT_MODULE:
            raise
    return build()


def _summary(error: BaseException, max_lines: int = 12) -> str:
    """The lines of a build log worth reading: the first, and those naming an error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines[1:] if "error" in line.lower()]
    return "\n".join(lines[:1] + errors[:max_lines])


_hooks: list[Callable[[], None]] = []
# The loaded extension, or the error that prevented it. A plain global rather than functools.cache:
# torch.compile reads a global as a constant, where it would trace into a cached function.
_extension_or_error: ModuleType | BaseException | None = None
_has_cuda_kernels = False


def on_load(fn: Callable[[], None]) -> Callable[[], None]:
    """Runs `fn` once the extension is loaded (now, if it already is). Fake kernels and autograd
    formulas are registered this way (pyi2i/ops/_library.py): registering them needs the operators
    to exist."""
    if isinstance(_extension_or_error, ModuleType):
        fn()
    else:
        _hooks.append(fn)
    return fn


def _extension() -> ModuleType | BaseException:
    """The loaded extension, or the error that prevented it (one attempt per process)."""
    global _extension_or_error, _has_cuda_kernels
    if _extension_or_error is None:
        try:
            module = _load()
            _has_cuda_kernels = has_cuda_kernels()
            _extension_or_error = module
            for hook in _hooks:
                hook()
        except Exception as e:  # noqa: BLE001 - reported by unavailable_reason, raised by ops()
            _extension_or_error = e
    return _extension_or_error


def has_cuda_kernels() -> bool:
    """Whether the pyi2i_C operators loaded in this process have CUDA kernels."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"{NAMESPACE}::l1_loss_fwd", "CUDA")


def unavailable_reason(x: torch.Tensor) -> str | None:
    """None when the extension's kernels can run on x's device, else why not (building it on
    first call)."""
    if x.device.type not in ("cpu", "cuda"):
        return f"it runs on CPU and CUDA tensors, not on {x.device.type}"
    extension = _extension()
    if isinstance(extension, BaseException):
        return f"the C++/CUDA extension failed to build or load:\n{_summary(extension)}"
    if x.device.type == "cuda" and not _has_cuda_kernels:
        return f"the C++/CUDA extension was built without CUDA kernels: {cuda_toolkit()[1] or 'prebuilt CPU-only'}"
    return None


def ops():
    """`torch.ops.pyi2i_C`, loading the extension first; raises its build error if it has none."""
    extension = _extension()
    if isinstance(extension, BaseException):
        raise RuntimeError("pyi2i's C++/CUDA extension is unavailable") from extension
    return getattr(torch.ops, NAMESPACE)
