// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/lm_head_ops.h"

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {

LmHeadLossRegistry& lm_head_loss_registry() {
  static LmHeadLossRegistry registry("lm_head_loss", lm_head_loss_reference);
  return registry;
}

torch::Tensor lm_head_loss_reference(const LmHeadLossArgs& a) {
  compat::NoAutocast explicit_dtypes;
  const auto dtype = a.compute_dtype;
  auto logits = torch::mm(a.h.to(dtype), a.weight.to(dtype).t());  // (N, V)
  return torch::nn::functional::cross_entropy(at_least_fp32(logits), a.targets);
}

torch::Tensor lm_head_loss(LmHeadLossArgs a) {
  a.needs_grad = torch::GradMode::is_enabled() && (a.h.requires_grad() || a.weight.requires_grad());
  // The dtype the model's other matmuls get from autocast.
  a.compute_dtype = matmul_dtype(a.h);
  return lm_head_loss_registry()(a.h.device().type(), a);
}

}  // namespace mmlab::ops
