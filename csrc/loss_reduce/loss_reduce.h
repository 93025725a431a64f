// Mean-reduced losses over every element of their inputs: the L1 term and the GAN objectives.
// Each loss is a functor with the element value and its gradient, shared by the CPU and CUDA
// kernels. The GAN target is a constant inside the functor: it is never materialised.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"

namespace pyi2i {

enum class LossKind : int32_t { kL1, kLsgan, kBceWithLogits };

// |a - b|
struct L1Loss {
  static constexpr bool kBinary = true;
  PYI2I_HD float value(float a, float b) const { return fabsf(a - b); }
  // sign(a - b), 0 at a == b like PyTorch's.
  PYI2I_HD float grad(float a, float b) const { return static_cast<float>((a > b) - (a < b)); }
};

// (p - target)^2
struct LsganLoss {
  static constexpr bool kBinary = false;
  float target;
  PYI2I_HD float value(float p, float) const { return (p - target) * (p - target); }
  PYI2I_HD float grad(float p, float) const { return 2.f * (p - target); }
};

// Binary cross-entropy on logits, in the form that neither overflows nor loses precision for
// large |p|: max(p, 0) - p * target + log(1 + exp(-|p|)).
struct BceWithLogitsLoss {
  static constexpr bool kBinary = false;
  float target;
  PYI2I_HD float value(float p, float) const { return fmaxf(p, 0.f) - p * target + log1pf(expf(-fabsf(p))); }
  PYI2I_HD float grad(float p, float) const { return 1.f / (1.f + expf(-p)) - target; }
};

// Calls f(loss) with the functor for `kind`.
template <class F>
void dispatch_loss(LossKind kind, float target, F&& f) {
  if (kind == LossKind::kL1) return f(L1Loss{});
  if (kind == LossKind::kLsgan) return f(LsganLoss{target});
  return f(BceWithLogitsLoss{target});
}

template <typename T>
struct LossParams {
  const T* a;         // (n,): pred, or x; read in storage order
  const T* b;         // (n,): y in a's storage order, or nullptr for the GAN losses
  int64_t n;          // number of elements
  LossKind kind;
  float target;       // GAN target, 1 (real) or 0 (fake)
  float* loss;        // (): forward output, mean over the n elements, fp32 whatever T
  const float* grad;  // (): backward input, dL/dloss, fp32 whatever T
  T* grad_a;          // (n,) like a: backward output
  T* grad_b;          // (n,) like b: backward output, -grad_a for L1; nullptr for the GAN losses
};

template <typename T>
void loss_mean_cpu(const LossParams<T>& p);
template <typename T>
void loss_grad_cpu(const LossParams<T>& p);

#ifdef PYI2I_WITH_CUDA
template <typename T>
void loss_mean_cuda(const LossParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc);
template <typename T>
void loss_grad_cuda(const LossParams<T>& p, cudaStream_t stream, WorkspaceAlloc alloc);
#endif

}  // namespace pyi2i
