// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/norm.h"

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

NormImpl::NormImpl(int64_t dim, const std::string& kind, double eps)
    : rms_(kind == "rmsnorm"), eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (!rms_) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  compat::NoAutocast fp32;
  auto xf = at_least_fp32(x);
  auto w = weight.to(xf.scalar_type());
  torch::Tensor y;
  if (rms_) {
    y = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_) * w;
  } else {
    y = torch::layer_norm(xf, {xf.size(-1)}, w, bias.to(xf.scalar_type()), eps_);
  }
  return y.to(x.scalar_type());
}

}  // namespace mmlab
