// Host entry points of the losses: validate, allocate, and launch the CPU or CUDA kernels.
#include "../checks.h"
#include "../ops.h"
#include "loss_reduce.h"

namespace pyi2i {
namespace {

void check_input(const char* op, const char* name, const Tensor& t) {
  check_device_supported(op, name, t);
  check_kernel_dtype(op, name, t);
  // The kernels walk storage in order, so any dense layout works, but no gaps or overlaps.
  TORCH_CHECK(t.is_non_overlapping_and_dense(), op, ": ", name,
              " must be dense (contiguous in some memory format), got shape ", t.sizes(), " and strides ",
              t.strides());
}

// Dense tensors whose strides agree wherever a size exceeds 1 hold their elements in one order.
void check_same_layout(const char* op, const char* name, const Tensor& t, const char* like_name, const Tensor& like) {
  check_like(op, name, t, like_name, like);
  check_same_shape(op, name, t, like_name, like);
  bool same = true;
  for (int64_t d = 0; d < t.dim(); ++d) same = same && (t.size(d) == 1 || t.stride(d) == like.stride(d));
  TORCH_CHECK(same, op, ": ", name, " must have ", like_name, "'s strides ", like.strides(), ", got ", t.strides());
}

// The loss is fp32 whatever the inputs' dtype (it is summed in fp32), so its gradient is too.
void check_grad(const char* op, const Tensor& grad, const char* like_name, const Tensor& like) {
  TORCH_CHECK(grad.device() == like.device(), op, ": grad must be on ", like_name, "'s device ", like.device(),
              ", got ", grad.device());
  TORCH_CHECK(grad.scalar_type() == at::kFloat, op, ": grad must be float32, got ", grad.scalar_type());
  TORCH_CHECK(grad.numel() == 1, op, ": grad must hold one element (the loss is a scalar), got shape ",
              grad.sizes());
}

float gan_target(bool target_is_real) { return target_is_real ? 1.f : 0.f; }

LossKind gan_loss_kind(c10::string_view mode) {
  if (mode == "lsgan") return LossKind::kLsgan;
  if (mode == "vanilla") return LossKind::kBceWithLogits;
  TORCH_CHECK(false, "gan_loss: mode must be 'lsgan' or 'vanilla', got '", std::string(mode), "'");
}

// The mean of the loss over all elements of a (and b), as a 0-dim fp32 tensor: the callers cast it
// to the dtype the reference gives (fp32 under autocast, the inputs' dtype otherwise).
Tensor loss_mean(const Tensor& a, const Tensor* b, LossKind kind, float target) {
  Tensor loss = at::empty({}, a.options().dtype(at::kFloat));
  dispatch_float_types(a.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const LossParams<T> p{a.data_ptr<T>(), b ? b->data_ptr<T>() : nullptr, a.numel(), kind, target,
                          loss.data_ptr<float>(), nullptr, nullptr, nullptr};
    run_kernel(
        a, [&] { loss_mean_cpu(p); }, [&](auto stream, auto alloc) { loss_mean_cuda(p, stream, alloc); });
  });
  return loss;
}

// Gradients of the mean loss w.r.t. a (and b), shaped and strided like them.
std::tuple<Tensor, Tensor> loss_grad(const Tensor& grad, const Tensor& a, const Tensor* b, LossKind kind,
                                     float target) {
  Tensor grad_a = at::empty_like(a), grad_b = b ? at::empty_like(*b) : Tensor();
  if (a.numel() == 0) return {grad_a, grad_b};
  dispatch_float_types(a.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const LossParams<T> p{a.data_ptr<T>(), b ? b->data_ptr<T>() : nullptr, a.numel(), kind, target,
                          nullptr, grad.data_ptr<float>(), grad_a.data_ptr<T>(), b ? grad_b.data_ptr<T>() : nullptr};
    run_kernel(
        a, [&] { loss_grad_cpu(p); }, [&](auto stream, auto alloc) { loss_grad_cuda(p, stream, alloc); });
  });
  return {grad_a, grad_b};
}

}  // namespace

Tensor gan_loss_fwd(const Tensor& pred, bool target_is_real, c10::string_view mode) {
  check_input("gan_loss", "pred", pred);
  return loss_mean(pred, nullptr, gan_loss_kind(mode), gan_target(target_is_real));
}

Tensor gan_loss_bwd(const Tensor& grad, const Tensor& pred, bool target_is_real, c10::string_view mode) {
  check_input("gan_loss", "pred", pred);
  check_grad("gan_loss", grad, "pred", pred);
  return std::get<0>(loss_grad(grad, pred, nullptr, gan_loss_kind(mode), gan_target(target_is_real)));
}

Tensor l1_loss_fwd(const Tensor& x, const Tensor& y) {
  check_input("l1_loss", "x", x);
  check_same_layout("l1_loss", "y", y, "x", x);
  return loss_mean(x, &y, LossKind::kL1, 0.f);
}

std::tuple<Tensor, Tensor> l1_loss_bwd(const Tensor& grad, const Tensor& x, const Tensor& y) {
  check_input("l1_loss", "x", x);
  check_same_layout("l1_loss", "y", y, "x", x);
  check_grad("l1_loss", grad, "x", x);
  return loss_grad(grad, x, &y, LossKind::kL1, 0.f);
}

}  // namespace pyi2i
