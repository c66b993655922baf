// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/attention.h"

#include "core/models/init.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

namespace nn = torch::nn;

torch::Tensor apply_rope(const torch::Tensor& x, int64_t offset, double theta) {
  const int64_t L = x.size(2), hd = x.size(3), half = hd / 2;
  auto fopts = torch::TensorOptions().device(x.device()).dtype(torch::kFloat);
  auto inv_freq = torch::pow(theta, -torch::arange(0, half, fopts) * 2.0 / static_cast<double>(hd));
  auto pos = torch::arange(offset, offset + L, fopts);
  auto angles = torch::outer(pos, inv_freq);                                    // (L, hd/2)
  auto cos = torch::cat({angles.cos(), angles.cos()}, -1).to(x.scalar_type());  // (L, hd)
  auto sin = torch::cat({angles.sin(), angles.sin()}, -1).to(x.scalar_type());
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);  // rotate_half
  return x * cos + rotated * sin;
}

AttentionImpl::AttentionImpl(const AttentionOptions& o) : options(o) {
  qkv = register_module("qkv",
                        nn::Linear(nn::LinearOptions(o.d_model(), 3 * o.d_model()).bias(false)));
  out = register_module("out", nn::Linear(nn::LinearOptions(o.d_model(), o.d_model()).bias(false)));
  reset_parameters();
}

void AttentionImpl::reset_parameters() {
  init_truncated_normal_(qkv->weight, static_cast<double>(options.d_model()));
  init_truncated_normal_(out->weight, static_cast<double>(options.d_model()));
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AttentionImpl::heads(const torch::Tensor& x,
                                                                             int64_t offset) {
  const int64_t B = x.size(0), L = x.size(1), hd = options.head_dim();
  const int64_t H = options.d_model() / hd;
  auto parts = qkv(x).view({B, L, 3, H, hd}).permute({2, 0, 3, 1, 4});  // (3, B, H, L, hd)
  auto q = apply_rope(parts[0], offset, options.rope_theta());
  auto k = apply_rope(parts[1], offset, options.rope_theta());
  return {q, k, parts[2]};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), L = x.size(1);
  auto [q, k, v] = heads(x, 0);
  auto y = compat::causal_attention(q, k, v);  // (B, H, L, hd)
  return out(y.transpose(1, 2).reshape({B, L, options.d_model()}));
}

torch::Tensor AttentionImpl::decode(const torch::Tensor& x, LayerCache& cache) {
  const int64_t B = x.size(0), L = x.size(1);
  auto [q, k, v] = heads(x, cache.position);
  cache.k = cache.k.defined() ? torch::cat({cache.k, k}, 2) : k;  // (B, H, L_seen, hd)
  cache.v = cache.v.defined() ? torch::cat({cache.v, v}, 2) : v;
  cache.position += L;
  auto y = compat::causal_attention(q, cache.k, cache.v);  // (B, H, L, hd)
  return out(y.transpose(1, 2).reshape({B, L, options.d_model()}));
}

FeedForwardImpl::FeedForwardImpl(int64_t d_model, int64_t d_ff) {
  fc1 = register_module("fc1", nn::Linear(d_model, d_ff));
  fc2 = register_module("fc2", nn::Linear(d_ff, d_model));
  reset_parameters();
}

void FeedForwardImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  init_truncated_normal_(fc1->weight, static_cast<double>(fc1->weight.size(1)));
  init_truncated_normal_(fc2->weight, static_cast<double>(fc2->weight.size(1)));
  fc1->bias.zero_();
  fc2->bias.zero_();
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return fc2(torch::relu(fc1(x)));
}

torch::Tensor FeedForwardImpl::decode(const torch::Tensor& x, LayerCache& cache) {
  (void)cache;
  return forward(x);
}

}  // namespace mmlab
