// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/grad_clip.h"

#include <cmath>

#include "core/ops/torch_compat.h"

namespace mmlab {

torch::Tensor clip_grad_norm_on_device(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({}, torch::kFloat);
  const torch::Tensor norm = compat::global_norm(grads).to(torch::kFloat);  // ()
  if (std::isfinite(max_norm)) {
    // A factor of exactly 1 leaves the gradients as they are, as the unclipped branch does.
    const torch::Tensor scale = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    compat::scale_all_(grads, scale);
  }
  return norm;
}

}  // namespace mmlab
