// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/attention_ops.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {

AttentionHeadsRegistry& attention_heads_registry() {
  static AttentionHeadsRegistry registry("attention_heads", attention_heads_reference);
  return registry;
}

namespace {

struct RopeTable {
  torch::Tensor cos, sin;  // (rows, hd/2) fp32
};

RopeTable rope_table(int64_t rows, int64_t hd, double theta, const torch::Device& device) {
  compat::NoAutocast fp32;
  const int64_t half = hd / 2;
  auto fopts = torch::TensorOptions().device(device).dtype(torch::kFloat);
  auto inv_freq = torch::pow(theta, -torch::arange(0, half, fopts) * 2.0 / static_cast<double>(hd));
  auto pos = torch::arange(0, rows, fopts);
  auto angles = torch::outer(pos, inv_freq);  // (rows, hd/2)
  return {angles.cos(), angles.sin()};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(int64_t L, int64_t hd, int64_t offset,
                                                     double theta, const torch::Device& device) {
  // One table per (device, head dim, theta) with every position asked for so far, doubled when a
  // later position needs more rows: decoding asks for one row per layer and token, and making it
  // each time was nine small operators of a layer's step. The rows of a position are the same
  // whichever table holds them (integer positions are exact in fp32). Never destroyed: CUDA
  // tensors must not be freed after the CUDA runtime has shut down at exit.
  static std::mutex mu;
  static auto* tables = new std::map<std::tuple<std::string, int64_t, double>, RopeTable>();
  constexpr int64_t kFirstRows = 1024;
  const int64_t needed = offset + L;
  std::lock_guard<std::mutex> lock(mu);
  RopeTable& t = (*tables)[{device.str(), hd, theta}];
  if (!t.cos.defined() || t.cos.size(0) < needed) {
    const int64_t rows = std::max(needed, t.cos.defined() ? 2 * t.cos.size(0) : kFirstRows);
    t = rope_table(rows, hd, theta, device);
  }
  return {t.cos.narrow(0, offset, L), t.sin.narrow(0, offset, L)};  // (L, hd/2) each
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
