// SPDX-License-Identifier: GPL-3.0-or-later
// Switch MoE (top-1), as the paper and its code define it.
//
// Shapes: T tokens (B*L flattened), Din/Dout model widths, X experts, C capacity, De expert width.
//   router.weight (X, Din)       logits = x W^T computed in fp32
//   w1 (X, Din, De), w2 (X, De, Dout)   expert i: ReLU(x w1[i]) w2[i], no biases
// capacity C = floor(capacity_factor * T / X); a token beyond its expert's capacity (in token
// order) gets a zero output, so only the residual carries it. Output = p_I(x) * E_I(x).
// Load-balancing loss: alpha * X * sum_i f_i * P_i (f_i: fraction of tokens whose argmax is i,
// before truncation; P_i: mean router probability).
#pragma once

#include <torch/torch.h>

#include "core/models/mixer.h"

namespace mmlab {

struct SwitchMoeOptions {
  SwitchMoeOptions(int64_t d_in, int64_t d_out, int64_t d_expert, int64_t n_expert)
      : d_in_(d_in), d_out_(d_out), d_expert_(d_expert), n_expert_(n_expert) {}
  TORCH_ARG(int64_t, d_in);
  TORCH_ARG(int64_t, d_out);
  TORCH_ARG(int64_t, d_expert);
  TORCH_ARG(int64_t, n_expert);
  /// capacity = floor(capacity_factor * tokens / n_expert)
  TORCH_ARG(double, capacity_factor) = 1.0;
  /// alpha of the load-balancing loss
  TORCH_ARG(double, aux_loss_weight) = 0.01;
};

/// What the last forward saw; read by the trainer for metrics.
struct MoeStats {
  torch::Tensor aux_loss;       // scalar, weighted by alpha, differentiable
  torch::Tensor expert_tokens;  // (X) int64: tokens routed (argmax) to each expert
  int64_t tokens = 0;
  torch::Tensor dropped;  // () int64 on the device: tokens over capacity
};

class SwitchMoeImpl : public MixerImpl {
 public:
  explicit SwitchMoeImpl(const SwitchMoeOptions& options);
  void reset_parameters();

  torch::Tensor forward(const torch::Tensor& x) override { return route(x, true); }
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override;
  void collect_moe(std::vector<SwitchMoeImpl*>& out) override { out.push_back(this); }
  bool reads_input_in_fp32() const override { return true; }

  /// (..., Din) -> (..., Dout); `limit_capacity` false routes every token (generation).
  torch::Tensor route(const torch::Tensor& x, bool limit_capacity);

  const MoeStats& last_stats() const { return stats_; }
  int64_t capacity(int64_t tokens) const;

  SwitchMoeOptions options;
  torch::nn::Linear router{nullptr};
  torch::Tensor w1;  // (X, Din, De)
  torch::Tensor w2;  // (X, De, Dout)

 private:
  torch::Tensor router_probs(const torch::Tensor& x);  // (T, Din) -> (T, X) fp32
  MoeStats stats_;
};
TORCH_MODULE(SwitchMoe);

}  // namespace mmlab
