// SPDX-License-Identifier: GPL-3.0-or-later
// The interface of everything that sits inside a pre-norm residual sub-layer (h <- h + f(Norm(h))):
// attention, FFN, Switch MoE, Mamba, parallel Mamba+MoE. A full-sequence forward for training and
// a cached decode for generation.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace mmlab {

class SwitchMoeImpl;

/// Per-layer state carried between decode calls.
struct LayerCache {
  torch::Tensor conv_state;  // Mamba: (B, Di, d_conv) last inputs of the causal conv
  torch::Tensor ssm_state;   // Mamba: (B, Di, N)
  torch::Tensor ssm_decay;   // Mamba: (Di, N) A = -exp(A_log), once per generation, not per token
  torch::Tensor k, v;        // attention: (B, H, L_seen, hd)
  int64_t position = 0;      // tokens seen so far (RoPE offset)
};

class MixerImpl : public torch::nn::Module {
 public:
  /// (B, L, D) -> (B, L, D)
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// (B, L_new, D) -> (B, L_new, D), continuing from `cache` and updating it. MoE layers route
  /// without a capacity limit here (one token at a time would otherwise have capacity 0).
  virtual torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) = 0;
  /// Appends the Switch MoE layers inside this mixer (for aux losses and expert statistics).
  virtual void collect_moe(std::vector<SwitchMoeImpl*>& out) { (void)out; }
  /// Whether forward() reads its input other than through matmuls, which autocast rounds to bf16
  /// (a router computing its softmax in fp32): the norm before it then returns fp32, not bf16.
  virtual bool reads_input_in_fp32() const { return false; }
};

}  // namespace mmlab
