// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/attention_ops.h"

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {

AttentionHeadsRegistry& attention_heads_registry() {
  static AttentionHeadsRegistry registry("attention_heads", attention_heads_reference);
  return registry;
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(int64_t L, int64_t hd, int64_t offset,
                                                     double theta, const torch::Device& device) {
  const int64_t half = hd / 2;
  auto fopts = torch::TensorOptions().device(device).dtype(torch::kFloat);
  auto inv_freq = torch::pow(theta, -torch::arange(0, half, fopts) * 2.0 / static_cast<double>(hd));
  auto pos = torch::arange(offset, offset + L, fopts);
  auto angles = torch::outer(pos, inv_freq);  // (L, hd/2)
  return {angles.cos(), angles.sin()};
}

torch::Tensor apply_rope(const torch::Tensor& x, int64_t offset, double theta) {
  compat::NoAutocast fp32;
  const int64_t L = x.size(2), hd = x.size(3), half = hd / 2;
  auto xf = at_least_fp32(x);  // (B, H, L, hd)
  auto [c, s] = rope_cos_sin(L, hd, offset, theta, x.device());
  auto cos = torch::cat({c, c}, -1).to(xf.scalar_type());  // (L, hd)
  auto sin = torch::cat({s, s}, -1).to(xf.scalar_type());
  auto x1 = xf.narrow(-1, 0, half), x2 = xf.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);  // rotate_half
  return (xf * cos + rotated * sin).to(x.scalar_type());
}

AttentionHeads attention_heads_reference(const AttentionHeadsArgs& a) {
  auto parts = a.qkv.permute({2, 0, 3, 1, 4});  // (3, B, H, L, hd)
  return {apply_rope(parts[0], a.offset, a.theta), apply_rope(parts[1], a.offset, a.theta),
          parts[2]};
}

AttentionHeads attention_heads(AttentionHeadsArgs a) {
  a.needs_grad = torch::GradMode::is_enabled() && a.qkv.requires_grad();
  return attention_heads_registry()(a.qkv.device().type(), a);
}

}  // namespace mmlab::ops
