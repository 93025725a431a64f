// Tensor-level entry points of the pyi2i_C operators; their schemas are in bindings.cpp.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <tuple>

#include "instance_norm_act/instance_norm_act.h"

namespace pyi2i {

using at::Tensor;
using OptTensor = std::optional<at::Tensor>;

Act parse_act(c10::string_view act);

// x: (N, C, H, W), NCHW- or channels_last-contiguous; weight, bias: (C,) or none; residual: like x.
// Returns out (like x) and the per-(n, c) mean and rstd, (N * C,) fp32.
std::tuple<Tensor, Tensor, Tensor> instance_norm_act_forward(const Tensor& x, const OptTensor& weight,
                                                             const OptTensor& bias, const OptTensor& residual,
                                                             Act act, double eps);
// Returns grad_x (like x) and the row sums of dL/dz and dL/dz * xhat, (N, C) fp32.
std::tuple<Tensor, Tensor, Tensor> instance_norm_act_backward(const Tensor& grad_out, const Tensor& x,
                                                              const OptTensor& weight, const OptTensor& bias,
                                                              const Tensor& mean, const Tensor& rstd, Act act);

std::tuple<Tensor, Tensor, Tensor> instance_norm_act_fwd(const Tensor& x, const OptTensor& weight,
                                                         const OptTensor& bias, const OptTensor& residual,
                                                         c10::string_view act, double eps);
// Returns grad_x and the (C,) fp32 weight and bias gradients.
std::tuple<Tensor, Tensor, Tensor> instance_norm_act_bwd(const Tensor& grad_out, const Tensor& x,
                                                         const OptTensor& weight, const OptTensor& bias,
                                                         const Tensor& mean, const Tensor& rstd,
                                                         c10::string_view act);

// pred: any shape, dense in any memory format. Returns a 0-dim fp32 tensor; grad is 0-dim fp32.
Tensor gan_loss_fwd(const Tensor& pred, bool target_is_real, c10::string_view mode);
Tensor gan_loss_bwd(const Tensor& grad, const Tensor& pred, bool target_is_real, c10::string_view mode);
// x, y: one shape, dtype and set of strides, dense. Returns a 0-dim fp32 tensor; grad is 0-dim fp32.
Tensor l1_loss_fwd(const Tensor& x, const Tensor& y);
std::tuple<Tensor, Tensor> l1_loss_bwd(const Tensor& grad, const Tensor& x, const Tensor& y);

// x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or none.
// Returns out, the convolution output y (saved for backward) and its mean and rstd.
std::tuple<Tensor, Tensor, Tensor, Tensor> conv_norm_act_fwd(const Tensor& x, const Tensor& weight,
                                                             const OptTensor& bias, int64_t stride,
                                                             int64_t padding, double eps);
std::tuple<Tensor, Tensor, Tensor> conv_norm_act_bwd(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                                     const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                                     int64_t stride, int64_t padding, bool has_bias,
                                                     std::array<bool, 3> output_mask);

}  // namespace pyi2i
