// Instance norm fused with an activation and a residual add:
//     out = residual + act((x - mean) * rstd * weight + bias),  statistics per (n, c) over H x W.
// The element math below is shared by the CPU and CUDA kernels, so both compute the same thing.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"

namespace pyi2i {

enum class Act : int32_t { kNone, kRelu, kLeakyRelu };
constexpr float kLeakyReluSlope = 0.2f;

PYI2I_HD float activate(float z, Act act) {
  if (act == Act::kRelu) return z > 0.f ? z : 0.f;
  if (act == Act::kLeakyRelu) return z > 0.f ? z : z * kLeakyReluSlope;
  return z;
}

// d act / dz. At z == 0 it takes PyTorch's values (relu: 0, leaky_relu: the slope), so gradients
// agree with the reference on the kink too.
PYI2I_HD float activate_grad(float z, Act act) {
  if (act == Act::kRelu) return z > 0.f ? 1.f : 0.f;
  if (act == Act::kLeakyRelu) return z > 0.f ? 1.f : kLeakyReluSlope;
  return 1.f;
}

// What one (n, c) row needs to normalise an element.
struct RowCoef {
  float mean, rstd, weight, bias;
};

// Absent weight and bias act as 1 and 0.
PYI2I_HD RowCoef row_coef(const float* weight, const float* bias, int64_t c, float mean, float rstd) {
  return {mean, rstd, weight ? weight[c] : 1.f, bias ? bias[c] : 0.f};
}

PYI2I_HD float inv_std(float var, float eps) {
#if defined(__CUDA_ARCH__)
  return rsqrtf(var + eps);
#else
  return 1.f / std::sqrt(var + eps);
#endif
}

// The forward output before the residual add. (x - mean) is formed first: folding the mean into
// a shift would cancel catastrophically when |mean| >> std.
PYI2I_HD float norm_act(float x, const RowCoef& k, Act act) {
  return activate((x - k.mean) * (k.rstd * k.weight) + k.bias, act);
}

// Backward recomputes the normalised input from the saved statistics instead of saving it.
// Sets xhat and dz = dL/dz for the pre-activation z = xhat * weight + bias.
PYI2I_HD void norm_act_grad(float x, float dy, const RowCoef& k, Act act, float& xhat, float& dz) {
  xhat = (x - k.mean) * k.rstd;
  dz = dy * activate_grad(xhat * k.weight + k.bias, act);
}

// dL/dx from dz, given the row means of dz and dz * xhat.
PYI2I_HD float norm_input_grad(float dz, float xhat, const RowCoef& k, float mean_dz, float mean_dz_xhat) {
  return k.rstd * k.weight * (dz - mean_dz - xhat * mean_dz_xhat);
}

template <typename T>
struct InstanceNormActFwdParams {
  const T* x;            // (N, C, H, W), NCHW or channels_last (see channels_last)
  const float* weight;   // (C,), or nullptr for scale 1
  const float* bias;     // (C,), or nullptr for shift 0
  const T* residual;     // like x, or nullptr
  T* out;                // like x
  float* mean;           // (N, C)
  float* rstd;           // (N, C): 1 / sqrt(biased variance + eps)
  int64_t N, C, HW;      // HW = H * W
  bool channels_last;    // x, residual and out are all in this layout
  Act act;
  float eps;
};

template <typename T>
struct InstanceNormActBwdParams {
  const T* grad_out;     // like x
  const T* x;            // (N, C, H, W), NCHW or channels_last (see channels_last)
  const float* weight;   // (C,), or nullptr
  const float* bias;     // (C,), or nullptr
  const float* mean;     // (N, C), from the forward
  const float* rstd;     // (N, C), from the forward
  T* grad_x;             // like x
  float* sum_dz;         // (N, C): sum over H x W of dL/dz; summed over N it is the bias gradient
  float* sum_dz_xhat;    // (N, C): sum over H x W of dL/dz * xhat; summed over N, the weight gradient
  int64_t N, C, HW;
  bool channels_last;    // grad_out, x and grad_x are all in this layout
  Act act;
};

template <typename T>
void instance_norm_act_fwd_cpu(const InstanceNormActFwdParams<T>& p);
template <typename T>
void instance_norm_act_bwd_cpu(const InstanceNormActBwdParams<T>& p);

#ifdef PYI2I_WITH_CUDA
template <typename T>
void instance_norm_act_fwd_cuda(const InstanceNormActFwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc);
template <typename T>
void instance_norm_act_bwd_cuda(const InstanceNormActBwdParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc);
#endif

}  // namespace pyi2i
