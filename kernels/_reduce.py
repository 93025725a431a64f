"""The sum the kernels reduce with.

Triton's library functions written in Triton (tl.sum, tl.zeros, ...) are defined when triton is
imported, and run in the CPU interpreter only if TRITON_INTERPRET=1 was set by then. The kernels use
built-ins only, and sum with tl.reduce over the combine function tl.sum uses: on a GPU that is
tl.sum itself; the interpreter recognises the combine and sums with numpy without calling it. So
the kernels run in the interpreter whenever the variable is set before their first launch, which
imports them, as the host code promises.
"""

import triton
import triton.language as tl


@triton.jit
def total(x, axis: tl.constexpr):
    """The sum of x along axis, in x's dtype (the kernels pass fp32)."""
    return tl.reduce(x, axis, tl.standard._sum_combine)
