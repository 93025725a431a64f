// Registers the operators as torch.ops.pyi2i_C.*: dispatcher ops (not Python bindings), so that
// torch.compile and CUDA graph capture see each as a single op. Fake (meta) kernels and autograd
// formulas are registered from Python, in pyi2i/ops/_library.py (the same for the Triton operators,
// whose schemas match these).
#include <Python.h>
#include <torch/library.h>

#include "ops.h"

TORCH_LIBRARY(pyi2i_C, m) {
  m.def("instance_norm_act_fwd(Tensor x, Tensor? weight, Tensor? bias, Tensor? residual, str act, float eps)"
        " -> (Tensor out, Tensor mean, Tensor rstd)");
  m.def("instance_norm_act_bwd(Tensor grad_out, Tensor x, Tensor? weight, Tensor? bias, Tensor mean,"
        " Tensor rstd, str act) -> (Tensor grad_x, Tensor grad_weight, Tensor grad_bias)");
  m.def("gan_loss_fwd(Tensor pred, bool target_is_real, str mode) -> Tensor");
  m.def("gan_loss_bwd(Tensor grad, Tensor pred, bool target_is_real, str mode) -> Tensor");
  m.def("l1_loss_fwd(Tensor x, Tensor y) -> Tensor");
  m.def("l1_loss_bwd(Tensor grad, Tensor x, Tensor y) -> (Tensor grad_x, Tensor grad_y)");
  m.def("conv_norm_act_fwd(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, float eps)"
        " -> (Tensor out, Tensor y, Tensor mean, Tensor rstd)");
  m.def("conv_norm_act_bwd(Tensor grad_out, Tensor x, Tensor weight, Tensor y, Tensor mean, Tensor rstd,"
        " int stride, int padding, bool has_bias, bool[3] output_mask)"
        " -> (Tensor grad_x, Tensor grad_weight, Tensor grad_bias)");
}

namespace {

// One set of entry points serves both devices: each launches the CPU or CUDA kernels itself.
void register_kernels(torch::Library& m) {
  m.impl("instance_norm_act_fwd", &pyi2i::instance_norm_act_fwd);
  m.impl("instance_norm_act_bwd", &pyi2i::instance_norm_act_bwd);
  m.impl("gan_loss_fwd", &pyi2i::gan_loss_fwd);
  m.impl("gan_loss_bwd", &pyi2i::gan_loss_bwd);
  m.impl("l1_loss_fwd", &pyi2i::l1_loss_fwd);
  m.impl("l1_loss_bwd", &pyi2i::l1_loss_bwd);
  m.impl("conv_norm_act_fwd", &pyi2i::conv_norm_act_fwd);
  m.impl("conv_norm_act_bwd", &pyi2i::conv_norm_act_bwd);
}

}  // namespace

TORCH_LIBRARY_IMPL(pyi2i_C, CPU, m) { register_kernels(m); }

#ifdef PYI2I_WITH_CUDA
TORCH_LIBRARY_IMPL(pyi2i_C, CUDA, m) { register_kernels(m); }
#endif

// Importing the built library as a Python module is what runs the registrations above; the
// module itself is empty. TORCH_EXTENSION_NAME is set by the build (the JIT build's hashed name,
// or _C for the ahead-of-time build).
#define PYI2I_STRINGIFY_(x) #x
#define PYI2I_STRINGIFY(x) PYI2I_STRINGIFY_(x)
#define PYI2I_CONCAT_(a, b) a##b
#define PYI2I_CONCAT(a, b) PYI2I_CONCAT_(a, b)

PyMODINIT_FUNC PYI2I_CONCAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, PYI2I_STRINGIFY(TORCH_EXTENSION_NAME),
                               "pyi2i's C++/CUDA operators, registered as torch.ops.pyi2i_C", -1, nullptr};
  return PyModule_Create(&module);
}
