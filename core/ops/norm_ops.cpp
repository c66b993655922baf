// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/norm_ops.h"

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {

NormRegistry& norm_registry() {
  static NormRegistry registry("norm", norm_reference);
  return registry;
}

torch::Tensor norm_reference(const NormArgs& a) {
  compat::NoAutocast fp32;
  auto xf = at_least_fp32(a.x);  // (N, D)
  auto w = a.weight.to(xf.scalar_type());
  torch::Tensor y;
  if (a.rms) {
    y = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + a.eps) * w;
  } else {
    y = torch::layer_norm(xf, {xf.size(-1)}, w, a.bias.to(xf.scalar_type()), a.eps);
  }
  return y.to(a.out_dtype);
}

torch::Tensor norm(NormArgs a) {
  a.needs_grad =
      torch::GradMode::is_enabled() && (a.x.requires_grad() || a.weight.requires_grad() ||
                                        (a.bias.defined() && a.bias.requires_grad()));
  return norm_registry()(a.x.device().type(), a);
}

}  // namespace mmlab::ops
