// CUDA kernels. The mean is a two-stage reduction: a grid whose size depends only on the element
// count writes one partial sum per block, and a single block adds the partials in a fixed order,
// so the loss is bitwise reproducible without floating-point atomics.
#include "../cuda_utils.cuh"
#include "loss_reduce.h"

namespace pyi2i {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kElementsPerThread = 16;
constexpr int64_t kMaxPartials = 1024;
constexpr int64_t kMaxGradBlocks = 1 << 16;

// Calls f(element offset, a vector, b vector) over a grid-stride loop of VEC-element vectors, then
// of single elements for the tail. b is all zeros for unary losses (and never read).
template <int VEC, bool kBinary, typename T, class F>
__device__ __forceinline__ void grid_stride_vectors(const T* a, const T* b, int64_t n, F&& f) {
  const int64_t thread = blockIdx.x * int64_t(kThreads) + threadIdx.y, threads = gridDim.x * int64_t(kThreads);
  const int64_t vectors = n / VEC;
  for (int64_t i = thread; i < vectors; i += threads)
    f(i * VEC, load_vec<T, VEC>(a + i * VEC), kBinary ? load_vec<T, VEC>(b + i * VEC) : Vec<T, VEC>{});
  for (int64_t i = vectors * VEC + thread; i < n; i += threads)
    f(i, load_vec<T, 1>(a + i), kBinary ? load_vec<T, 1>(b + i) : Vec<T, 1>{});
}

// Blocks are (1, kThreads): one lane wide, as block_allreduce counts lanes along x.
template <class Loss, typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    loss_partial_kernel(const LossParams<T> p, Loss loss, float* partials /* (gridDim.x,) */) {
  __shared__ float smem[kThreads / kWarpSize];
  float acc[1] = {0.f};
  grid_stride_vectors<VEC, Loss::kBinary>(p.a, p.b, p.n, [&](int64_t, const auto& a, const auto& b) {
#pragma unroll
    for (int e = 0; e < std::decay_t<decltype(a)>::kSize; ++e)
      acc[0] += loss.value(static_cast<float>(a.v[e]), static_cast<float>(b.v[e]));
  });
  block_allreduce(acc, smem);
  if (threadIdx.y == 0) partials[blockIdx.x] = acc[0];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    loss_finalize_kernel(const float* partials /* (count,) */, int64_t count, int64_t n, float* loss /* () fp32 */) {
  __shared__ float smem[kThreads / kWarpSize];
  float acc[1] = {0.f};
  for (int64_t i = threadIdx.y; i < count; i += kThreads) acc[0] += partials[i];
  block_allreduce(acc, smem);
  if (threadIdx.y == 0) *loss = static_cast<float>(double(acc[0]) / double(n));
}

template <class Loss, typename T, int VEC>
__global__ void __launch_bounds__(kThreads) loss_grad_kernel(const LossParams<T> p, Loss loss) {
  // Read on the device: the upstream gradient never comes back to the host.
  const float scale = static_cast<float>(double(*p.grad) / double(p.n));
  grid_stride_vectors<VEC, Loss::kBinary>(p.a, p.b, p.n, [&](int64_t at, const auto& a, const auto& b) {
    using V = std::decay_t<decltype(a)>;
    V grad_a, grad_b;
#pragma unroll
    for (int e = 0; e < V::kSize; ++e) {
      const float g = scale * loss.grad(static_cast<float>(a.v[e]), static_cast<float>(b.v[e]));
      grad_a.v[e] = static_cast<T>(g);
      grad_b.v[e] = static_cast<T>(-g);  // binary losses are functions of a - b
    }
    store_vec<T, V::kSize>(p.grad_a + at, grad_a);
    if constexpr (Loss::kBinary) store_vec<T, V::kSize>(p.grad_b + at, grad_b);
  });
}

template <typename T, class Loss>
bool can_vectorize(const LossParams<T>& p, std::initializer_list<const void*> outputs) {
  bool ok = aligned16(p.a) && (!Loss::kBinary || aligned16(p.b));
  for (const void* ptr : outputs) ok = ok && (ptr == nullptr || aligned16(ptr));
  return ok;
}

}  // namespace

template <typename T>
void loss_mean_cuda(const LossParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc) {
  const int64_t blocks = std::clamp<int64_t>(ceil_div(p.n, kThreads * kElementsPerThread), 1, kMaxPartials);
  float* partials = static_cast<float*>(alloc(blocks * sizeof(float)));
  dispatch_loss(p.kind, p.target, [&](auto loss) {
    using Loss = decltype(loss);
    dispatch_vec<T>(can_vectorize<T, Loss>(p, {}), [&](auto vec) {
      loss_partial_kernel<Loss, T, decltype(vec)::value>
          <<<static_cast<unsigned>(blocks), dim3(1, kThreads), 0, stream>>>(p, loss, partials);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  loss_finalize_kernel<T><<<1, dim3(1, kThreads), 0, stream>>>(partials, blocks, p.n, p.loss);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void loss_grad_cuda(const LossParams<T>& p, cudaStream_t stream, WorkspaceAlloc) {
  const int64_t blocks = std::clamp<int64_t>(ceil_div(p.n, kThreads * kElementsPerThread), 1, kMaxGradBlocks);
  dispatch_loss(p.kind, p.target, [&](auto loss) {
    using Loss = decltype(loss);
    dispatch_vec<T>(can_vectorize<T, Loss>(p, {p.grad_a, p.grad_b}), [&](auto vec) {
      loss_grad_kernel<Loss, T, decltype(vec)::value>
          <<<static_cast<unsigned>(blocks), dim3(1, kThreads), 0, stream>>>(p, loss);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

#define PYI2I_INSTANTIATE(T)                                                                \
  template void loss_mean_cuda<T>(const LossParams<T>&, cudaStream_t, WorkspaceAlloc); \
  template void loss_grad_cuda<T>(const LossParams<T>&, cudaStream_t, WorkspaceAlloc);
PYI2I_INSTANTIATE(float)
PYI2I_INSTANTIATE(c10::Half)
PYI2I_INSTANTIATE(c10::BFloat16)
#undef PYI2I_INSTANTIATE

}  // namespace pyi2i
