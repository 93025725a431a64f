// Device helpers shared by the CUDA kernels: vector loads and deterministic block reductions.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <type_traits>

#include "common.h"

namespace pyi2i {

constexpr int kWarpSize = 32;
constexpr int kMaxBlockThreads = 512;

// VEC elements moved as one 16-byte (or smaller) memory transaction.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  static constexpr int kSize = VEC;
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, VEC>*>(p);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, VEC>& v) {
  *reinterpret_cast<Vec<T, VEC>*>(p) = v;
}

// Elements per 16-byte vector of T.
template <typename T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls f(std::integral_constant<int, VEC>{}) with VEC = 16 / sizeof(T) when `vectorize`, else 1.
template <typename T, class F>
void dispatch_vec(bool vectorize, F&& f) {
  if (vectorize) return f(std::integral_constant<int, kVec16<T>>{});
  f(std::integral_constant<int, 1>{});
}

inline int next_pow2(int64_t v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

__device__ __forceinline__ float merge(float a, float b) { return a + b; }
__device__ __forceinline__ float shfl_xor(float v, int offset) {
  return __shfl_xor_sync(0xffffffffu, v, offset);
}

// Reduces each of a thread's K accumulators over the threads of the block that share its
// threadIdx.x (the block is blockDim.x lanes wide, a power of two <= 32, and a whole number of
// warps), in an order fixed by the block shape, so results are bitwise reproducible. Every thread
// receives the totals for its lane. `smem` holds (warps * blockDim.x * K) accumulators.
template <class Acc, int K>
__device__ __forceinline__ void block_allreduce(Acc (&acc)[K], Acc* smem) {
  const int tx = threadIdx.x, width = blockDim.x;
  const int linear = threadIdx.y * width + tx, lane = linear % kWarpSize, warp = linear / kWarpSize;
  const int warps = blockDim.x * blockDim.y / kWarpSize;
  // Within a warp, xor offsets >= width combine threads of equal threadIdx.x.
  for (int offset = kWarpSize / 2; offset >= width; offset >>= 1)
#pragma unroll
    for (int j = 0; j < K; ++j) acc[j] = merge(acc[j], shfl_xor(acc[j], offset));
  if (lane < width)
#pragma unroll
    for (int j = 0; j < K; ++j) smem[(warp * width + tx) * K + j] = acc[j];
  __syncthreads();
#pragma unroll
  for (int j = 0; j < K; ++j) {
    Acc total = smem[tx * K + j];
    for (int w = 1; w < warps; ++w) total = merge(total, smem[(w * width + tx) * K + j]);
    acc[j] = total;
  }
}

}  // namespace pyi2i
