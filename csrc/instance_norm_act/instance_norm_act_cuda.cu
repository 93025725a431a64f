// CUDA kernels. Each pass reads the tensor in its own layout (NCHW or channels_last, no
// conversion) in 16-byte vectors where aligned. Statistics and gradient sums accumulate in fp32
// and reduce in an order fixed by the launch plan, which depends only on the shape and alignment:
// results are bitwise reproducible, with no atomics.
//
// Forward:  fwd_stats_kernel (Welford per thread, merged across the block); when a row is split
//           across blocks, welford_finalize_kernel merges the splits and fwd_apply_kernel writes
//           the output; otherwise fwd_stats_kernel writes it directly.
// Backward: the same shape with the sums of dz and dz * xhat, xhat recomputed from the saved
//           mean and rstd.
#include "../cuda_utils.cuh"
#include "instance_norm_act.h"

namespace pyi2i {
namespace {

// The launch plan. NCHW: a block per row, 32..512 threads along it. channels_last: 256 threads,
// as many VEC-channel lanes across as the channels need (at most 32). When the rows give fewer
// than kTargetBlocks blocks (small N * C, large H x W), each row is split along H x W over up to
// kMaxSplits blocks, every thread keeping at least kMinVectorsPerThread vectors.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMaxSplits = 64;
constexpr int64_t kMinVectorsPerThread = 4;
constexpr int kChannelsLastThreads = 256;
constexpr int kFinalizeThreads = 256;

template <bool kChannelsLast>
constexpr int kBlockThreads = kChannelsLast ? kChannelsLastThreads : kMaxBlockThreads;

struct Welford {
  float mean, m2, count;
};

__device__ __forceinline__ void welford_add(Welford& w, float x) {
  w.count += 1.f;
  const float d = x - w.mean;
  w.mean += d / w.count;
  w.m2 += d * (x - w.mean);
}

__device__ __forceinline__ Welford merge(Welford a, Welford b) {
  if (b.count == 0.f) return a;
  if (a.count == 0.f) return b;
  const float count = a.count + b.count, d = b.mean - a.mean, b_share = b.count / count;
  return {a.mean + d * b_share, a.m2 + b.m2 + d * d * a.count * b_share, count};
}

__device__ __forceinline__ Welford shfl_xor(Welford w, int offset) {
  return {pyi2i::shfl_xor(w.mean, offset), pyi2i::shfl_xor(w.m2, offset), pyi2i::shfl_xor(w.count, offset)};
}

struct GradSums {
  float dz, dz_xhat;
};

__device__ __forceinline__ GradSums merge(GradSums a, GradSums b) { return {a.dz + b.dz, a.dz_xhat + b.dz_xhat}; }

__device__ __forceinline__ GradSums shfl_xor(GradSums s, int offset) {
  return {pyi2i::shfl_xor(s.dz, offset), pyi2i::shfl_xor(s.dz_xhat, offset)};
}

// The part of the tensor a thread works on.
//   NCHW: a block owns one (n, c) row (blockDim.x == 1); its threads walk the row's pixels in
//         vectors of VEC neighbouring pixels.
//   channels_last: a block owns one sample and blockDim.x * VEC channels; each thread holds VEC
//         neighbouring channels (one vector per pixel) and the threads along y walk the pixels.
// blockIdx.y is the split: the range of pixels [begin, end) this block covers.
template <int VEC, bool kChannelsLast>
struct Tile {
  static constexpr int kChannels = kChannelsLast ? VEC : 1;  // channels per thread
  static constexpr int kPixels = kChannelsLast ? 1 : VEC;    // pixels per vector

  int64_t row;           // n * C + c for the thread's first channel
  int64_t c;             // the thread's first channel
  int64_t base;          // element offset of (n, c, pixel 0)
  int64_t pixel_stride;  // elements between neighbouring pixels
  int64_t begin, end;    // this split's pixels
  bool active;           // false for channels_last threads past the last channel

  __device__ Tile(int64_t C, int64_t HW, int64_t chunk) {
    begin = blockIdx.y * chunk;
    end = begin + chunk < HW ? begin + chunk : HW;
    if constexpr (kChannelsLast) {
      const int64_t tiles_per_sample = ceil_div(C, int64_t(blockDim.x) * VEC);
      const int64_t n = blockIdx.x / tiles_per_sample;
      c = (blockIdx.x % tiles_per_sample) * blockDim.x * VEC + threadIdx.x * VEC;
      active = c < C;
      row = n * C + c;
      base = n * HW * C + c;
      pixel_stride = C;
    } else {
      row = blockIdx.x;
      c = row % C;
      active = true;
      base = row * HW;
      pixel_stride = 1;
    }
  }

  // Channel slot (0 .. kChannels) of a vector's e-th element.
  static __device__ __forceinline__ int slot(int e) { return kChannelsLast ? e : 0; }

  // Calls f(element offset of the vector) for each of the thread's vectors.
  template <class F>
  __device__ __forceinline__ void for_each_vector(F&& f) const {
    if (!active) return;
    for (int64_t i = begin + int64_t(threadIdx.y) * kPixels; i < end; i += int64_t(blockDim.y) * kPixels)
      f(base + i * pixel_stride);
  }
};

template <typename T, int VEC, bool kCL>
__device__ __forceinline__ void fwd_apply(const InstanceNormActFwdParams<T>& p, const Tile<VEC, kCL>& tile,
                                          const RowCoef (&coef)[Tile<VEC, kCL>::kChannels]) {
  using TileT = Tile<VEC, kCL>;
  tile.for_each_vector([&](int64_t at) {
    const Vec<T, VEC> x = load_vec<T, VEC>(p.x + at);
    Vec<T, VEC> residual, out;
    if (p.residual) residual = load_vec<T, VEC>(p.residual + at);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      float y = norm_act(static_cast<float>(x.v[e]), coef[TileT::slot(e)], p.act);
      if (p.residual) y += static_cast<float>(residual.v[e]);
      out.v[e] = static_cast<T>(y);
    }
    store_vec<T, VEC>(p.out + at, out);
  });
}

// Statistics of the block's tile. With one split they are complete, and the block goes on to
// write its output; with several, it leaves its partial statistics for welford_finalize_kernel.
template <typename T, int VEC, bool kCL>
__global__ void __launch_bounds__(kBlockThreads<kCL>)
    fwd_stats_kernel(const InstanceNormActFwdParams<T> p, int64_t chunk,
                     Welford* partials /* (N * C, splits), or nullptr with one split */) {
  using TileT = Tile<VEC, kCL>;
  constexpr int K = TileT::kChannels;
  extern __shared__ __align__(16) unsigned char smem[];
  const TileT tile(p.C, p.HW, chunk);
  Welford acc[K] = {};
  tile.for_each_vector([&](int64_t at) {
    const Vec<T, VEC> x = load_vec<T, VEC>(p.x + at);
#pragma unroll
    for (int e = 0; e < VEC; ++e) welford_add(acc[TileT::slot(e)], static_cast<float>(x.v[e]));
  });
  block_allreduce(acc, reinterpret_cast<Welford*>(smem));
  if (!tile.active) return;
  if (gridDim.y > 1) {
    if (threadIdx.y == 0)
#pragma unroll
      for (int j = 0; j < K; ++j) partials[(tile.row + j) * gridDim.y + blockIdx.y] = acc[j];
    return;
  }
  RowCoef coef[K];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    coef[j] = row_coef(p.weight, p.bias, tile.c + j, acc[j].mean, inv_std(acc[j].m2 / float(p.HW), p.eps));
    if (threadIdx.y == 0) {
      p.mean[tile.row + j] = coef[j].mean;
      p.rstd[tile.row + j] = coef[j].rstd;
    }
  }
  fwd_apply(p, tile, coef);
}

__global__ void welford_finalize_kernel(const Welford* partials /* (rows, splits) */, int splits, int64_t rows,
                                        int64_t HW, float eps, float* mean /* (rows,) */, float* rstd /* (rows,) */) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  Welford acc = partials[row * splits];
  for (int s = 1; s < splits; ++s) acc = merge(acc, partials[row * splits + s]);
  mean[row] = acc.mean;
  rstd[row] = inv_std(acc.m2 / float(HW), eps);
}

template <typename T, int VEC, bool kCL>
__global__ void __launch_bounds__(kBlockThreads<kCL>)
    fwd_apply_kernel(const InstanceNormActFwdParams<T> p, int64_t chunk) {
  using TileT = Tile<VEC, kCL>;
  const TileT tile(p.C, p.HW, chunk);
  if (!tile.active) return;
  RowCoef coef[TileT::kChannels];
#pragma unroll
  for (int j = 0; j < TileT::kChannels; ++j)
    coef[j] = row_coef(p.weight, p.bias, tile.c + j, p.mean[tile.row + j], p.rstd[tile.row + j]);
  fwd_apply(p, tile, coef);
}

template <typename T, int VEC, bool kCL>
__device__ __forceinline__ void bwd_apply(const InstanceNormActBwdParams<T>& p, const Tile<VEC, kCL>& tile,
                                          const RowCoef (&coef)[Tile<VEC, kCL>::kChannels],
                                          const GradSums (&sums)[Tile<VEC, kCL>::kChannels]) {
  using TileT = Tile<VEC, kCL>;
  constexpr int K = TileT::kChannels;
  float mean_dz[K], mean_dz_xhat[K];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    mean_dz[j] = sums[j].dz / float(p.HW);
    mean_dz_xhat[j] = sums[j].dz_xhat / float(p.HW);
  }
  tile.for_each_vector([&](int64_t at) {
    const Vec<T, VEC> x = load_vec<T, VEC>(p.x + at), dy = load_vec<T, VEC>(p.grad_out + at);
    Vec<T, VEC> dx;
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const int j = TileT::slot(e);
      float xhat, dz;
      norm_act_grad(static_cast<float>(x.v[e]), static_cast<float>(dy.v[e]), coef[j], p.act, xhat, dz);
      dx.v[e] = static_cast<T>(norm_input_grad(dz, xhat, coef[j], mean_dz[j], mean_dz_xhat[j]));
    }
    store_vec<T, VEC>(p.grad_x + at, dx);
  });
}

template <typename T, int VEC, bool kCL>
__device__ __forceinline__ void load_saved_coef(const InstanceNormActBwdParams<T>& p, const Tile<VEC, kCL>& tile,
                                                RowCoef (&coef)[Tile<VEC, kCL>::kChannels]) {
#pragma unroll
  for (int j = 0; j < Tile<VEC, kCL>::kChannels; ++j)
    coef[j] = row_coef(p.weight, p.bias, tile.c + j, p.mean[tile.row + j], p.rstd[tile.row + j]);
}

// Sums of dz and dz * xhat over the block's tile; complete with one split (the block then writes
// grad_x), partial with several (combined by gradsums_finalize_kernel).
template <typename T, int VEC, bool kCL>
__global__ void __launch_bounds__(kBlockThreads<kCL>)
    bwd_sums_kernel(const InstanceNormActBwdParams<T> p, int64_t chunk,
                    GradSums* partials /* (N * C, splits), or nullptr with one split */) {
  using TileT = Tile<VEC, kCL>;
  constexpr int K = TileT::kChannels;
  extern __shared__ __align__(16) unsigned char smem[];
  const TileT tile(p.C, p.HW, chunk);
  RowCoef coef[K];
  if (tile.active) load_saved_coef(p, tile, coef);
  GradSums acc[K] = {};
  tile.for_each_vector([&](int64_t at) {
    const Vec<T, VEC> x = load_vec<T, VEC>(p.x + at), dy = load_vec<T, VEC>(p.grad_out + at);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const int j = TileT::slot(e);
      float xhat, dz;
      norm_act_grad(static_cast<float>(x.v[e]), static_cast<float>(dy.v[e]), coef[j], p.act, xhat, dz);
      acc[j].dz += dz;
      acc[j].dz_xhat += dz * xhat;
    }
  });
  block_allreduce(acc, reinterpret_cast<GradSums*>(smem));
  if (!tile.active) return;
  if (gridDim.y > 1) {
    if (threadIdx.y == 0)
#pragma unroll
      for (int j = 0; j < K; ++j) partials[(tile.row + j) * gridDim.y + blockIdx.y] = acc[j];
    return;
  }
  if (threadIdx.y == 0)
#pragma unroll
    for (int j = 0; j < K; ++j) {
      p.sum_dz[tile.row + j] = acc[j].dz;
      p.sum_dz_xhat[tile.row + j] = acc[j].dz_xhat;
    }
  bwd_apply(p, tile, coef, acc);
}

__global__ void gradsums_finalize_kernel(const GradSums* partials /* (rows, splits) */, int splits, int64_t rows,
                                         float* sum_dz /* (rows,) */, float* sum_dz_xhat /* (rows,) */) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  GradSums acc = partials[row * splits];
  for (int s = 1; s < splits; ++s) acc = merge(acc, partials[row * splits + s]);
  sum_dz[row] = acc.dz;
  sum_dz_xhat[row] = acc.dz_xhat;
}

template <typename T, int VEC, bool kCL>
__global__ void __launch_bounds__(kBlockThreads<kCL>)
    bwd_apply_kernel(const InstanceNormActBwdParams<T> p, int64_t chunk) {
  using TileT = Tile<VEC, kCL>;
  constexpr int K = TileT::kChannels;
  const TileT tile(p.C, p.HW, chunk);
  if (!tile.active) return;
  RowCoef coef[K];
  GradSums sums[K];
  load_saved_coef(p, tile, coef);
#pragma unroll
  for (int j = 0; j < K; ++j) sums[j] = {p.sum_dz[tile.row + j], p.sum_dz_xhat[tile.row + j]};
  bwd_apply(p, tile, coef, sums);
}

// The launch plan (see make_plan).

struct Plan {
  dim3 grid;       // (tiles, splits)
  dim3 block;      // (channel lanes, threads along the pixels)
  int64_t chunk;   // pixels per split
};

template <int VEC, bool kCL>
Plan make_plan(int64_t N, int64_t C, int64_t HW) {
  int lanes, threads_y;
  int64_t tiles;
  constexpr int64_t pixels_per_vector = Tile<VEC, kCL>::kPixels;
  if constexpr (kCL) {
    lanes = std::min<int>(kWarpSize, next_pow2(ceil_div(C, VEC)));
    threads_y = kChannelsLastThreads / lanes;
    tiles = N * ceil_div(C, int64_t(lanes) * VEC);
  } else {
    lanes = 1;
    threads_y = std::clamp(next_pow2(ceil_div(HW, VEC * kMinVectorsPerThread)), kWarpSize, kMaxBlockThreads);
    tiles = N * C;
  }
  TORCH_CHECK(tiles <= std::numeric_limits<int32_t>::max(), "instance_norm_act: too many (n, c) rows for one launch");
  const int64_t max_splits = std::max<int64_t>(1, HW / (threads_y * pixels_per_vector * kMinVectorsPerThread));
  const int64_t splits = std::min({ceil_div(kTargetBlocks, tiles), max_splits, kMaxSplits});
  const int64_t chunk = ceil_div(ceil_div(HW, splits), pixels_per_vector) * pixels_per_vector;
  return {dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(ceil_div(HW, chunk))), dim3(lanes, threads_y), chunk};
}

template <class Acc, int VEC, bool kCL>
size_t reduce_smem_bytes(const Plan& plan) {
  const size_t warps = plan.block.x * plan.block.y / kWarpSize;
  return warps * plan.block.x * Tile<VEC, kCL>::kChannels * sizeof(Acc);
}

// Calls f(vec, channels_last) as std::integral_constants, vectorising when every pointer is
// 16-byte aligned and vectors do not straddle rows (NCHW) or pixels (channels_last).
template <typename T, class F>
void dispatch_tile(bool channels_last, int64_t C, int64_t HW, std::initializer_list<const void*> ptrs, F&& f) {
  bool vectorize = (channels_last ? C : HW) % kVec16<T> == 0;
  for (const void* ptr : ptrs) vectorize = vectorize && (ptr == nullptr || aligned16(ptr));
  dispatch_vec<T>(vectorize, [&](auto vec) {
    if (channels_last) return f(vec, std::true_type{});
    f(vec, std::false_type{});
  });
}

template <typename T, int VEC, bool kCL>
void launch_fwd(const InstanceNormActFwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc) {
  const Plan plan = make_plan<VEC, kCL>(p.N, p.C, p.HW);
  const int64_t rows = p.N * p.C, splits = plan.grid.y;
  Welford* partials = splits > 1 ? static_cast<Welford*>(alloc(rows * splits * sizeof(Welford))) : nullptr;
  fwd_stats_kernel<T, VEC, kCL><<<plan.grid, plan.block, reduce_smem_bytes<Welford, VEC, kCL>(plan), stream>>>(
      p, plan.chunk, partials);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (splits == 1) return;
  welford_finalize_kernel<<<ceil_div(rows, kFinalizeThreads), kFinalizeThreads, 0, stream>>>(
      partials, splits, rows, p.HW, p.eps, p.mean, p.rstd);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  fwd_apply_kernel<T, VEC, kCL><<<plan.grid, plan.block, 0, stream>>>(p, plan.chunk);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int VEC, bool kCL>
void launch_bwd(const InstanceNormActBwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc) {
  const Plan plan = make_plan<VEC, kCL>(p.N, p.C, p.HW);
  const int64_t rows = p.N * p.C, splits = plan.grid.y;
  GradSums* partials = splits > 1 ? static_cast<GradSums*>(alloc(rows * splits * sizeof(GradSums))) : nullptr;
  bwd_sums_kernel<T, VEC, kCL><<<plan.grid, plan.block, reduce_smem_bytes<GradSums, VEC, kCL>(plan), stream>>>(
      p, plan.chunk, partials);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (splits == 1) return;
  gradsums_finalize_kernel<<<ceil_div(rows, kFinalizeThreads), kFinalizeThreads, 0, stream>>>(
      partials, splits, rows, p.sum_dz, p.sum_dz_xhat);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  bwd_apply_kernel<T, VEC, kCL><<<plan.grid, plan.block, 0, stream>>>(p, plan.chunk);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

template <typename T>
void instance_norm_act_fwd_cuda(const InstanceNormActFwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc) {
  dispatch_tile<T>(p.channels_last, p.C, p.HW, {p.x, p.residual, p.out}, [&](auto vec, auto channels_last) {
    launch_fwd<T, decltype(vec)::value, decltype(channels_last)::value>(p, stream, alloc);
  });
}

template <typename T>
void instance_norm_act_bwd_cuda(const InstanceNormActBwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc) {
  dispatch_tile<T>(p.channels_last, p.C, p.HW, {p.grad_out, p.x, p.grad_x}, [&](auto vec, auto channels_last) {
    launch_bwd<T, decltype(vec)::value, decltype(channels_last)::value>(p, stream, alloc);
  });
}

#define PYI2I_INSTANTIATE(T)                                                                                    \
  template void instance_norm_act_fwd_cuda<T>(const InstanceNormActFwdParams<T>&, cudaStream_t, WorkspaceAlloc); \
  template void instance_norm_act_bwd_cuda<T>(const InstanceNormActBwdParams<T>&, cudaStream_t, WorkspaceAlloc);
PYI2I_INSTANTIATE(float)
PYI2I_INSTANTIATE(c10::Half)
PYI2I_INSTANTIATE(c10::BFloat16)
#undef PYI2I_INSTANTIATE

}  // namespace pyi2i
