// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/attention.h"

#include "core/models/init.h"
#include "core/ops/attention_ops.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

namespace nn = torch::nn;

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
  ops::AttentionHeadsArgs a;
  a.qkv = qkv(x).view({B, L, 3, H, hd});
  a.offset = offset;
  a.theta = options.rope_theta();
  ops::AttentionHeads h = ops::attention_heads(a);  // (B, H, L, hd) each
  return {h.q, h.k, h.v};
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
