// The PatchGAN block: convolution -> instance norm (no affine) -> LeakyReLU(0.2).
// The convolution goes through ATen (cuDNN or oneDNN); the norm and activation are the fused
// kernels. Backward needs only x, the weight, the convolution output y and y's statistics: the
// normalised activation is recomputed from y rather than kept alive between the passes.
#include "../checks.h"
#include "../ops.h"

namespace pyi2i {
namespace {

constexpr const char* kOp = "conv_norm_act";

void check_conv_args(const Tensor& x, const Tensor& weight, int64_t stride, int64_t padding) {
  check_device_supported(kOp, "x", x);
  check_kernel_dtype(kOp, "x", x);
  TORCH_CHECK(x.dim() == 4, kOp, ": x must be a 4-D (N, C_in, H, W) tensor, got shape ", x.sizes());
  check_like(kOp, "weight", weight, "x", x);
  TORCH_CHECK(weight.dim() == 4 && weight.size(1) == x.size(1), kOp,
              ": weight must have shape (C_out, C_in, kH, kW) with C_in = ", x.size(1), ", got ", weight.sizes());
  TORCH_CHECK(stride >= 1, kOp, ": stride must be >= 1, got ", stride);
  TORCH_CHECK(padding >= 0, kOp, ": padding must be >= 0, got ", padding);
}

std::vector<int64_t> pair(int64_t v) { return {v, v}; }

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> conv_norm_act_fwd(const Tensor& x, const Tensor& weight,
                                                             const OptTensor& bias, int64_t stride,
                                                             int64_t padding, double eps) {
  check_conv_args(x, weight, stride, padding);
  if (bias.has_value() && bias->defined()) {
    check_like(kOp, "bias", *bias, "x", x);
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), kOp, ": bias must have shape (C_out,) = (",
                weight.size(0), ",), got ", bias->sizes());
  }
  Tensor y = at::convolution(x, weight, bias, pair(stride), pair(padding), pair(1), false, pair(0), 1);
  // The norm kernels take NCHW or channels_last; the convolution returns one of them in practice.
  if (!y.is_contiguous() && !y.is_contiguous(at::MemoryFormat::ChannelsLast)) y = y.contiguous();
  auto [out, mean, rstd] = instance_norm_act_forward(y, std::nullopt, std::nullopt, std::nullopt, Act::kLeakyRelu, eps);
  return {out, y, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> conv_norm_act_bwd(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                                     const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                                     int64_t stride, int64_t padding, bool has_bias,
                                                     std::array<bool, 3> output_mask) {
  check_conv_args(x, weight, stride, padding);
  TORCH_CHECK(!output_mask[2] || has_bias, kOp, ": output_mask asks for a bias gradient but has_bias is false");
  const Tensor grad_y =
      std::get<0>(instance_norm_act_backward(grad_out, y, std::nullopt, std::nullopt, mean, rstd, Act::kLeakyRelu));
  const std::vector<int64_t> bias_sizes{weight.size(0)};
  return at::convolution_backward(grad_y, x, weight, has_bias ? at::OptionalIntArrayRef(bias_sizes) : std::nullopt,
                                  pair(stride), pair(padding), pair(1), false, pair(0), 1, output_mask);
}

}  // namespace pyi2i
