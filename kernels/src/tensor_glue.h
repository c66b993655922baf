// SPDX-License-Identifier: GPL-3.0-or-later
// What the conv and decode-step glue files share: turning tensors into the kernels' plain views,
// the checks their why_not functions make, and launch errors into exceptions. CPU torch headers
// only, so the glue compiles against a LibTorch without CUDA too.
#pragma once

#include <torch/torch.h>

#include <initializer_list>
#include <stdexcept>
#include <string>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

/// "" when `t` (named `name`) is absent, fp32 or bf16; else "<name> dtype <type>".
inline std::string dtype_why_not(const char* name, const torch::Tensor& t) {
  if (!t.defined()) return "";
  const auto type = t.scalar_type();
  if (type == torch::kFloat || type == torch::kBFloat16) return "";
  return std::string(name) + " dtype " + c10::toString(type);
}

/// "" when `t` is absent or on a CUDA device; meta tensors pass too, since validation asks
/// why_not with meta tensors before any data exists.
inline std::string device_why_not(const char* name, const torch::Tensor& t) {
  if (!t.defined() || t.is_cuda() || t.is_meta()) return "";
  return std::string(name) + " on " + c10::DeviceTypeName(t.device().type(), true);
}

inline std::string dim_why_not(const char* name, const torch::Tensor& t, int64_t dims) {
  if (!t.defined() || t.dim() == dims) return "";
  return std::string(name) + " is " + std::to_string(t.dim()) + "-D, not " + std::to_string(dims) +
         "-D";
}

/// An input as a why_not function checks it: its name in the reason, the tensor (maybe absent)
/// and the number of dimensions it must have.
struct CheckedInput {
  const char* name;
  const torch::Tensor& t;
  int64_t dims;
};

/// The first input whose rank is not its `dims`, as dim_why_not words it; "" when all fit.
inline std::string dims_why_not(std::initializer_list<CheckedInput> inputs) {
  for (const CheckedInput& in : inputs) {
    if (auto why = dim_why_not(in.name, in.t, in.dims); !why.empty()) return why;
  }
  return "";
}

/// The first input of a dtype or on a device the kernels do not take; "" when all pass.
inline std::string dtype_device_why_not(std::initializer_list<CheckedInput> inputs) {
  for (const CheckedInput& in : inputs) {
    if (auto why = dtype_why_not(in.name, in.t); !why.empty()) return why;
    if (auto why = device_why_not(in.name, in.t); !why.empty()) return why;
  }
  return "";
}

inline ElementType element_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? ElementType::kBFloat16 : ElementType::kFloat32;
}

/// The kernels' view of a small input of up to two dimensions; data nullptr when `t` is absent.
inline StridedInput strided_input(const torch::Tensor& t) {
  StridedInput in;
  if (!t.defined()) return in;
  in.data = t.data_ptr();
  in.type = element_type(t);
  in.stride0 = t.dim() > 0 ? t.stride(0) : 0;
  in.stride1 = t.dim() > 1 ? t.stride(1) : 0;
  return in;
}

/// Throws when `t` is present but not a CUDA tensor on `device` or its sizes are not `sizes`.
inline void check_input(const char* op, const char* name, const torch::Tensor& t,
                        const torch::Device& device, torch::IntArrayRef sizes) {
  if (!t.defined()) return;
  if (t.device() != device) {
    throw std::invalid_argument(std::string(op) + ": " + name + " is on " + t.device().str() +
                                ", not on " + device.str() + " with the other inputs.");
  }
  if (t.sizes() != sizes) {
    throw std::invalid_argument(std::string(op) + ": " + name + " has shape " +
                                c10::str(t.sizes()) + ", expected " + c10::str(sizes) + ".");
  }
}

/// Turns a launcher's error text (nullptr on success) into an exception naming the op.
inline void check_launch(const char* error, const char* op) {
  if (error != nullptr) {
    throw std::runtime_error(std::string("The CUDA kernel of ") + op +
                             " failed to launch: " + error + ".");
  }
}

}  // namespace mmlab::kernels
