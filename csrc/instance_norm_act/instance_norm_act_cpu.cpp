// CPU kernels: rows in parallel with at::parallel_for, fp32 accumulation, fp16/bf16 by conversion.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <array>

#include "instance_norm_act.h"

namespace pyi2i {
namespace {

// A task is one sample and a block of channels, one accumulator lane per channel. NCHW blocks are
// narrow: each lane streams its own contiguous row. Channels_last blocks are wide: the lanes lie
// side by side in memory, so the inner loop over lanes vectorises.
constexpr int64_t kLanesNCHW = 4;
constexpr int64_t kLanesNHWC = 32;
constexpr int64_t kMaxLanes = 32;

struct Task {
  int64_t row0;         // n * C + c0: the (n, c) row of lane 0
  int64_t c0;           // channel of lane 0
  int64_t lanes;        // channels in the block, <= kMaxLanes
  int64_t base;         // element offset of (n, c0, 0, 0)
  int64_t lane_stride;  // elements between neighbouring channels
  int64_t hw_stride;    // elements between neighbouring spatial positions
};

struct TaskGrid {
  int64_t N, C, HW;
  bool channels_last;

  int64_t lanes() const { return channels_last ? kLanesNHWC : kLanesNCHW; }
  int64_t blocks_per_sample() const { return ceil_div(C, lanes()); }
  int64_t size() const { return N * blocks_per_sample(); }
  Task task(int64_t i) const {
    const int64_t n = i / blocks_per_sample(), c0 = (i % blocks_per_sample()) * lanes();
    const int64_t lanes_here = std::min(lanes(), C - c0), sample = n * C * HW;
    if (channels_last) return {n * C + c0, c0, lanes_here, sample + c0, 1, C};
    return {n * C + c0, c0, lanes_here, sample + c0 * HW, HW, 1};
  }
};

// Calls f(element_offset, lane) for every element of the task at pixels [begin, end).
template <class F>
void for_each_element(const Task& t, int64_t begin, int64_t end, F&& f) {
  for (int64_t i = begin; i < end; ++i) {
    const int64_t at = t.base + i * t.hw_stride;
    for (int64_t k = 0; k < t.lanes; ++k) f(at + k * t.lane_stride, k);
  }
}

// Per-lane sums of the M values f(element_offset, lane) returns, over all pixels. Pixels are summed
// in blocks and then the block sums are added, which bounds the fp32 rounding error by the block
// length plus the number of blocks instead of by H x W.
constexpr int64_t kBlockPixels = 256;

template <int M, class F>
void lane_sums(const Task& t, int64_t HW, float (&total)[M][kMaxLanes], F&& f) {
  for (int64_t begin = 0; begin < HW; begin += kBlockPixels) {
    float block[M][kMaxLanes] = {};
    for_each_element(t, begin, std::min(HW, begin + kBlockPixels), [&](int64_t at, int64_t k) {
      const std::array<float, M> v = f(at, k);
      for (int m = 0; m < M; ++m) block[m][k] += v[m];
    });
    for (int m = 0; m < M; ++m)
      for (int64_t k = 0; k < t.lanes; ++k) total[m][k] += block[m][k];
  }
}

template <typename T>
void fwd_task(const InstanceNormActFwdParams<T>& p, const Task& t) {
  const float inv_hw = 1.f / static_cast<float>(p.HW);
  // Two passes (mean, then squared deviations) keep the fp32 variance accurate at no per-element
  // division, which a one-pass Welford update would cost.
  float sum[1][kMaxLanes] = {};
  lane_sums(t, p.HW, sum, [&](int64_t at, int64_t) { return std::array<float, 1>{static_cast<float>(p.x[at])}; });
  float mean[kMaxLanes];
  for (int64_t k = 0; k < t.lanes; ++k) mean[k] = sum[0][k] * inv_hw;
  float m2[1][kMaxLanes] = {};
  lane_sums(t, p.HW, m2, [&](int64_t at, int64_t k) {
    const float d = static_cast<float>(p.x[at]) - mean[k];
    return std::array<float, 1>{d * d};
  });
  RowCoef coef[kMaxLanes];
  for (int64_t k = 0; k < t.lanes; ++k) {
    coef[k] = row_coef(p.weight, p.bias, t.c0 + k, mean[k], inv_std(m2[0][k] * inv_hw, p.eps));
    p.mean[t.row0 + k] = coef[k].mean;
    p.rstd[t.row0 + k] = coef[k].rstd;
  }
  for_each_element(t, 0, p.HW, [&](int64_t at, int64_t k) {
    float y = norm_act(static_cast<float>(p.x[at]), coef[k], p.act);
    if (p.residual) y += static_cast<float>(p.residual[at]);
    p.out[at] = static_cast<T>(y);
  });
}

template <typename T>
void bwd_task(const InstanceNormActBwdParams<T>& p, const Task& t) {
  const float inv_hw = 1.f / static_cast<float>(p.HW);
  RowCoef coef[kMaxLanes];
  for (int64_t k = 0; k < t.lanes; ++k)
    coef[k] = row_coef(p.weight, p.bias, t.c0 + k, p.mean[t.row0 + k], p.rstd[t.row0 + k]);
  // sums[0]: dz, sums[1]: dz * xhat
  float sums[2][kMaxLanes] = {};
  lane_sums(t, p.HW, sums, [&](int64_t at, int64_t k) {
    float xhat, dz;
    norm_act_grad(static_cast<float>(p.x[at]), static_cast<float>(p.grad_out[at]), coef[k], p.act, xhat, dz);
    return std::array<float, 2>{dz, dz * xhat};
  });
  float mean_dz[kMaxLanes], mean_dz_xhat[kMaxLanes];
  for (int64_t k = 0; k < t.lanes; ++k) {
    p.sum_dz[t.row0 + k] = sums[0][k];
    p.sum_dz_xhat[t.row0 + k] = sums[1][k];
    mean_dz[k] = sums[0][k] * inv_hw;
    mean_dz_xhat[k] = sums[1][k] * inv_hw;
  }
  for_each_element(t, 0, p.HW, [&](int64_t at, int64_t k) {
    float xhat, dz;
    norm_act_grad(static_cast<float>(p.x[at]), static_cast<float>(p.grad_out[at]), coef[k], p.act, xhat, dz);
    p.grad_x[at] = static_cast<T>(norm_input_grad(dz, xhat, coef[k], mean_dz[k], mean_dz_xhat[k]));
  });
}

template <typename P, class TaskFn>
void run_tasks(const P& p, TaskFn task_fn) {
  const TaskGrid grid{p.N, p.C, p.HW, p.channels_last};
  at::parallel_for(0, grid.size(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) task_fn(p, grid.task(i));
  });
}

}  // namespace

template <typename T>
void instance_norm_act_fwd_cpu(const InstanceNormActFwdParams<T>& p) {
  run_tasks(p, fwd_task<T>);
}

template <typename T>
void instance_norm_act_bwd_cpu(const InstanceNormActBwdParams<T>& p) {
  run_tasks(p, bwd_task<T>);
}

#define PYI2I_INSTANTIATE(T)                                                          \
  template void instance_norm_act_fwd_cpu<T>(const InstanceNormActFwdParams<T>&); \
  template void instance_norm_act_bwd_cpu<T>(const InstanceNormActBwdParams<T>&);
PYI2I_INSTANTIATE(float)
PYI2I_INSTANTIATE(c10::Half)
PYI2I_INSTANTIATE(c10::BFloat16)
#undef PYI2I_INSTANTIATE

}  // namespace pyi2i
