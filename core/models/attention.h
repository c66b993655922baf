// SPDX-License-Identifier: GPL-3.0-or-later
// Causal multi-head attention with rotary position embeddings (theta 10000, rotate-half, in
// ops::attention_heads), and the dense FFN of the Transformer baselines.
//
// Shapes: B batch, L length, D d_model, H heads, hd head_dim = D / H.
//   qkv (3D, D), out (D, D), no biases.   ffn: fc1 (F, D) + bias, fc2 (D, F) + bias
#pragma once

#include <torch/torch.h>

#include "core/models/mixer.h"

namespace mmlab {

struct AttentionOptions {
  explicit AttentionOptions(int64_t d_model) : d_model_(d_model) {}
  TORCH_ARG(int64_t, d_model);
  /// H = d_model / head_dim
  TORCH_ARG(int64_t, head_dim) = 64;
  TORCH_ARG(double, rope_theta) = 10000.0;
};

class AttentionImpl : public MixerImpl {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override;

  AttentionOptions options;
  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear out{nullptr};

 private:
  /// (B, L, D) -> q, k, v (B, H, L, hd) with RoPE applied from absolute position `offset`.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> heads(const torch::Tensor& x,
                                                                int64_t offset);
};
TORCH_MODULE(Attention);

class FeedForwardImpl : public MixerImpl {
 public:
  FeedForwardImpl(int64_t d_model, int64_t d_ff);
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override;

  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(FeedForward);

}  // namespace mmlab
