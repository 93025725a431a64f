// CPU kernels. The sum runs over fixed-size chunks whose partial sums are added in chunk order, so
// the result does not depend on the number of threads.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <vector>

#include "loss_reduce.h"

namespace pyi2i {
namespace {

constexpr int64_t kChunk = 1 << 14;
constexpr int64_t kLanes = 8;  // independent accumulators, so the inner loop vectorises

template <class Loss, typename T>
float element_value(const Loss& loss, const LossParams<T>& p, int64_t i) {
  return loss.value(static_cast<float>(p.a[i]), Loss::kBinary ? static_cast<float>(p.b[i]) : 0.f);
}

template <class Loss, typename T>
float chunk_sum(const Loss& loss, const LossParams<T>& p, int64_t begin, int64_t end) {
  float lanes[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) lanes[k] += element_value(loss, p, i + k);
  for (; i < end; ++i) lanes[0] += element_value(loss, p, i);
  float sum = 0.f;
  for (int64_t k = 0; k < kLanes; ++k) sum += lanes[k];
  return sum;
}

}  // namespace

template <typename T>
void loss_mean_cpu(const LossParams<T>& p) {
  dispatch_loss(p.kind, p.target, [&](auto loss) {
    std::vector<float> partial(ceil_div(p.n, kChunk));
    at::parallel_for(0, static_cast<int64_t>(partial.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) partial[c] = chunk_sum(loss, p, c * kChunk, std::min(p.n, (c + 1) * kChunk));
    });
    double sum = 0.0;
    for (float s : partial) sum += s;
    *p.loss = static_cast<float>(sum / static_cast<double>(p.n));
  });
}

template <typename T>
void loss_grad_cpu(const LossParams<T>& p) {
  dispatch_loss(p.kind, p.target, [&](auto loss) {
    using Loss = decltype(loss);
    const float scale = static_cast<float>(static_cast<double>(*p.grad) / static_cast<double>(p.n));
    at::parallel_for(0, p.n, kChunk, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float a = static_cast<float>(p.a[i]), b = Loss::kBinary ? static_cast<float>(p.b[i]) : 0.f;
        const float g = scale * loss.grad(a, b);
        p.grad_a[i] = static_cast<T>(g);
        // Binary losses are functions of a - b: d/db = -d/da.
        if (Loss::kBinary) p.grad_b[i] = static_cast<T>(-g);
      }
    });
  });
}

#define PYI2I_INSTANTIATE(T)                                   \
  template void loss_mean_cpu<T>(const LossParams<T>&); \
  template void loss_grad_cpu<T>(const LossParams<T>&);
PYI2I_INSTANTIATE(float)
PYI2I_INSTANTIATE(c10::Half)
PYI2I_INSTANTIATE(c10::BFloat16)
#undef PYI2I_INSTANTIATE

}  // namespace pyi2i
