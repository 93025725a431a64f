// Helpers shared by host and device code. Free of ATen, so that .cu files compile quickly.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PYI2I_HD __host__ __device__ __forceinline__
#else
#define PYI2I_HD inline
#endif

namespace pyi2i {

PYI2I_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace pyi2i

#ifdef PYI2I_WITH_CUDA
#include <cuda_runtime_api.h>
#include <c10/util/FunctionRef.h>

namespace pyi2i {
// Hands a launcher `bytes` of scratch memory that stays valid until the launcher returns; the
// host side backs it with a tensor from the caching allocator, so it is stream-ordered and safe
// to capture in a CUDA graph.
using WorkspaceAlloc = c10::function_ref<void*(size_t bytes)>;
}  // namespace pyi2i
#endif
