// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/norm.h"

#include "core/ops/norm_ops.h"

namespace mmlab {

NormImpl::NormImpl(int64_t dim, const std::string& kind, double eps)
    : rms_(kind == "rmsnorm"), eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (!rms_) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  return forward_to(x, x.scalar_type());
}

torch::Tensor NormImpl::forward_to(const torch::Tensor& x, torch::ScalarType out_dtype) {
  ops::NormArgs a;
  a.x = x.reshape({-1, x.size(-1)});  // (N, D)
  a.weight = weight;
  if (!rms_) a.bias = bias;
  a.eps = eps_;
  a.rms = rms_;
  a.out_dtype = out_dtype;
  return ops::norm(a).view(x.sizes());
}

}  // namespace mmlab
