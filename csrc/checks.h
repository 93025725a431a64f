// Argument validation and dtype dispatch for the host entry points (ATen side only).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "common.h"

#ifdef PYI2I_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pyi2i {

inline bool is_kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

// Calls f(scalar_t{}) with the C++ type of `t` (float, c10::Half or c10::BFloat16).
template <class F>
void dispatch_float_types(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float{}); break;
    case at::kHalf: f(c10::Half{}); break;
    case at::kBFloat16: f(c10::BFloat16{}); break;
    default: TORCH_CHECK(false, "unsupported dtype ", t);
  }
}

inline void check_device_supported(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu() || t.device().is_cuda(), op, ": ", name,
              " must be a CPU or CUDA tensor, got one on ", t.device());
}

inline void check_kernel_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(is_kernel_dtype(t.scalar_type()), op, ": ", name,
              " must be float32, float16 or bfloat16, got ", t.scalar_type());
}

// `t` must live on `like`'s device and have its dtype, where `like` is named `like_name`.
inline void check_like(const char* op, const char* name, const at::Tensor& t, const char* like_name,
                       const at::Tensor& like) {
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " must be on ", like_name, "'s device ",
              like.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), op, ": ", name, " must have ", like_name,
              "'s dtype ", like.scalar_type(), ", got ", t.scalar_type());
}

inline void check_same_shape(const char* op, const char* name, const at::Tensor& t, const char* like_name,
                             const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == like.sizes(), op, ": ", name, " must have ", like_name, "'s shape ",
              like.sizes(), ", got ", t.sizes());
}

// Runs `cpu()` for CPU tensors, or for CUDA tensors `cuda(stream, alloc)` on `like`'s device and
// current stream, with scratch memory from the caching allocator. `cuda` is a generic lambda, so a
// CPU-only build never instantiates it and needs no CUDA launcher.
template <class CpuFn, class CudaFn>
void run_kernel(const at::Tensor& like, CpuFn&& cpu, CudaFn&& cuda) {
  if (!like.is_cuda()) return cpu();
#ifdef PYI2I_WITH_CUDA
  const c10::cuda::CUDAGuard guard(like.device());
  std::vector<at::Tensor> workspace;
  auto alloc = [&](size_t bytes) -> void* {
    workspace.push_back(at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte)));
    return workspace.back().data_ptr();
  };
  cuda(c10::cuda::getCurrentCUDAStream().stream(), WorkspaceAlloc(alloc));
#else
  TORCH_CHECK(false, "pyi2i's C++ ops were built without CUDA support, cannot run on ", like.device());
#endif
}

}  // namespace pyi2i
