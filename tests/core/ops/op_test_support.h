// SPDX-License-Identifier: GPL-3.0-or-later
// The op tests' tolerance table and comparison.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <sstream>
#include <string>

namespace mmlab::ops::test {

/// Largest allowed |got - want|, relative to max(1, max |want|) of the tensor compared: the
/// implementations may sum in another order (chunks, warps), so errors scale with magnitudes.
struct Tolerance {
  double out;
  double grad;  // gradients sum over batch and length (dA, dB, dD...), hence looser
};

/// Per dtype: fp32 inputs leave only summation order; bf16 inputs and outputs round at 2^-8.
inline Tolerance tolerance_for(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16:
      return {2e-2, 5e-2};
    case torch::kHalf:
      return {5e-3, 1e-2};
    default:
      return {2e-4, 1e-3};
  }
}

inline double scale_of(const torch::Tensor& want) {
  return std::max(1.0, want.abs().max().item<double>());
}

/// max |got - want|; infinity when either is undefined, the shapes differ or got is not finite.
inline double max_error(const torch::Tensor& got, const torch::Tensor& want) {
  if (!got.defined() || !want.defined() || got.sizes() != want.sizes()) {
    return std::numeric_limits<double>::infinity();
  }
  auto g = got.to(torch::kCPU, torch::kDouble), w = want.to(torch::kCPU, torch::kDouble);
  if (!torch::isfinite(g).all().item<bool>()) return std::numeric_limits<double>::infinity();
  return (g - w).abs().max().item<double>();
}

/// Both defined, same shape, and within `tol` of each other (see Tolerance).
inline bool close(const torch::Tensor& got, const torch::Tensor& want, double tol) {
  if (!got.defined() || !want.defined()) return got.defined() == want.defined();
  if (got.sizes() != want.sizes()) return false;
  auto g = got.to(torch::kCPU, torch::kDouble), w = want.to(torch::kCPU, torch::kDouble);
  if (!torch::isfinite(g).all().item<bool>()) return false;
  return (g - w).abs().max().item<double>() <= tol * scale_of(w);
}

/// What differs, for the failure message.
inline std::string difference(const torch::Tensor& got, const torch::Tensor& want) {
  std::ostringstream s;
  if (!got.defined() || !want.defined()) {
    s << (got.defined() ? "" : "got undefined ") << (want.defined() ? "" : "want undefined");
    return s.str();
  }
  if (got.sizes() != want.sizes()) {
    s << "shape " << got.sizes() << " != " << want.sizes();
    return s.str();
  }
  auto g = got.to(torch::kCPU, torch::kDouble), w = want.to(torch::kCPU, torch::kDouble);
  s << "max |diff| " << (g - w).abs().max().item<double>() << " at scale " << scale_of(w)
    << (torch::isfinite(g).all().item<bool>() ? "" : " (got has NaN/Inf)");
  return s.str();
}

}  // namespace mmlab::ops::test
