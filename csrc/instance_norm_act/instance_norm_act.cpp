// Host entry points: validate, allocate, and launch the CPU or CUDA kernels.
#include "../checks.h"
#include "../ops.h"

namespace pyi2i {
namespace {

constexpr const char* kOp = "instance_norm_act";

void check_input(const char* name, const Tensor& x) {
  check_device_supported(kOp, name, x);
  check_kernel_dtype(kOp, name, x);
  TORCH_CHECK(x.dim() == 4, kOp, ": ", name, " must be a 4-D (N, C, H, W) tensor, got shape ", x.sizes());
  TORCH_CHECK(x.size(2) * x.size(3) > 0, kOp, ": ", name, " must have H * W > 0, got shape ", x.sizes());
}

// The kernels read x in its own layout: NCHW when it is contiguous, else channels_last.
bool channels_last_layout(const char* name, const Tensor& x) {
  if (x.is_contiguous()) return false;
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), kOp, ": ", name,
              " must be contiguous in NCHW or channels_last memory format, got strides ", x.strides());
  return true;
}

at::MemoryFormat memory_format(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

void check_layout(const char* name, const Tensor& t, const Tensor& x, bool channels_last) {
  check_like(kOp, name, t, "x", x);
  check_same_shape(kOp, name, t, "x", x);
  TORCH_CHECK(t.is_contiguous(memory_format(channels_last)), kOp, ": ", name, " must be laid out like x (",
              channels_last ? "channels_last" : "NCHW", "-contiguous), got strides ", t.strides());
}

// weight or bias as the kernels read it: (C,) fp32, or an undefined tensor when absent.
Tensor affine_param(const char* name, const OptTensor& param, const Tensor& x) {
  if (!param.has_value() || !param->defined()) return Tensor();
  const Tensor& p = *param;
  TORCH_CHECK(p.device() == x.device(), kOp, ": ", name, " must be on x's device ", x.device(), ", got ",
              p.device());
  TORCH_CHECK(p.scalar_type() == at::kFloat || p.scalar_type() == x.scalar_type(), kOp, ": ", name,
              " must be float32 or x's dtype ", x.scalar_type(), ", got ", p.scalar_type());
  TORCH_CHECK(p.dim() == 1 && p.size(0) == x.size(1), kOp, ": ", name, " must have shape (C,) = (", x.size(1),
              ",), got ", p.sizes());
  TORCH_CHECK(p.is_contiguous(), kOp, ": ", name, " must be contiguous");
  return p.to(at::kFloat);
}

const float* float_ptr(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

void check_stats(const char* name, const Tensor& s, const Tensor& x) {
  TORCH_CHECK(s.device() == x.device(), kOp, ": ", name, " must be on x's device ", x.device(), ", got ",
              s.device());
  TORCH_CHECK(s.scalar_type() == at::kFloat, kOp, ": ", name, " must be float32, got ", s.scalar_type());
  TORCH_CHECK(s.dim() == 1 && s.size(0) == x.size(0) * x.size(1) && s.is_contiguous(), kOp, ": ", name,
              " must be a contiguous (N * C,) = (", x.size(0) * x.size(1), ",) tensor, got shape ", s.sizes());
}

}  // namespace

Act parse_act(c10::string_view act) {
  if (act == "none") return Act::kNone;
  if (act == "relu") return Act::kRelu;
  if (act == "leaky_relu") return Act::kLeakyRelu;
  TORCH_CHECK(false, kOp, ": act must be one of 'none', 'relu', 'leaky_relu', got '", std::string(act), "'");
}

std::tuple<Tensor, Tensor, Tensor> instance_norm_act_forward(const Tensor& x, const OptTensor& weight,
                                                             const OptTensor& bias, const OptTensor& residual,
                                                             Act act, double eps) {
  check_input("x", x);
  const bool channels_last = channels_last_layout("x", x);
  const Tensor w = affine_param("weight", weight, x), b = affine_param("bias", bias, x);
  const bool has_residual = residual.has_value() && residual->defined();
  if (has_residual) check_layout("residual", *residual, x, channels_last);

  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor out = at::empty(x.sizes(), x.options().memory_format(memory_format(channels_last)));
  Tensor mean = at::empty({N * C}, x.options().dtype(at::kFloat));
  Tensor rstd = at::empty({N * C}, x.options().dtype(at::kFloat));
  if (N * C == 0) return {out, mean, rstd};

  dispatch_float_types(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const InstanceNormActFwdParams<T> p{
        x.data_ptr<T>(), float_ptr(w), float_ptr(b), has_residual ? residual->data_ptr<T>() : nullptr,
        out.data_ptr<T>(), mean.data_ptr<float>(), rstd.data_ptr<float>(), N, C, HW, channels_last, act,
        static_cast<float>(eps)};
    run_kernel(
        x, [&] { instance_norm_act_fwd_cpu(p); },
        [&](auto stream, auto alloc) { instance_norm_act_fwd_cuda(p, stream, alloc); });
  });
  return {out, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> instance_norm_act_backward(const Tensor& grad_out, const Tensor& x,
                                                              const OptTensor& weight, const OptTensor& bias,
                                                              const Tensor& mean, const Tensor& rstd, Act act) {
  check_input("x", x);
  const bool channels_last = channels_last_layout("x", x);
  check_layout("grad_out", grad_out, x, channels_last);
  check_stats("mean", mean, x);
  check_stats("rstd", rstd, x);
  const Tensor w = affine_param("weight", weight, x), b = affine_param("bias", bias, x);

  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(memory_format(channels_last)));
  Tensor sum_dz = at::empty({N, C}, x.options().dtype(at::kFloat));
  Tensor sum_dz_xhat = at::empty({N, C}, x.options().dtype(at::kFloat));
  if (N * C == 0) return {grad_x, sum_dz.zero_(), sum_dz_xhat.zero_()};

  dispatch_float_types(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const InstanceNormActBwdParams<T> p{
        grad_out.data_ptr<T>(), x.data_ptr<T>(), float_ptr(w), float_ptr(b), mean.data_ptr<float>(),
        rstd.data_ptr<float>(), grad_x.data_ptr<T>(), sum_dz.data_ptr<float>(), sum_dz_xhat.data_ptr<float>(),
        N, C, HW, channels_last, act};
    run_kernel(
        x, [&] { instance_norm_act_bwd_cpu(p); },
        [&](auto stream, auto alloc) { instance_norm_act_bwd_cuda(p, stream, alloc); });
  });
  return {grad_x, sum_dz, sum_dz_xhat};
}

std::tuple<Tensor, Tensor, Tensor> instance_norm_act_fwd(const Tensor& x, const OptTensor& weight,
                                                         const OptTensor& bias, const OptTensor& residual,
                                                         c10::string_view act, double eps) {
  return instance_norm_act_forward(x, weight, bias, residual, parse_act(act), eps);
}

std::tuple<Tensor, Tensor, Tensor> instance_norm_act_bwd(const Tensor& grad_out, const Tensor& x,
                                                         const OptTensor& weight, const OptTensor& bias,
                                                         const Tensor& mean, const Tensor& rstd,
                                                         c10::string_view act) {
  auto [grad_x, sum_dz, sum_dz_xhat] = instance_norm_act_backward(grad_out, x, weight, bias, mean, rstd,
                                                                  parse_act(act));
  // Summing the (N, C) row sums over N in a fixed order keeps the parameter gradients deterministic.
  return {grad_x, sum_dz_xhat.sum(0), sum_dz.sum(0)};
}

}  // namespace pyi2i
