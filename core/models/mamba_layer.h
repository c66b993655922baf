// SPDX-License-Identifier: GPL-3.0-or-later
// Mamba-1 layer (mamba_ssm's mamba_simple.py), parameter names as in the Python reference so
// exports need no renaming table.
//
// Shapes: B batch, L length, D d_model, Di d_inner = expand*D, N d_state, R dt_rank, K d_conv.
//   in_proj  (2Di, D)   x = first half ("conv projection"), z = second half ("gate projection")
//   conv1d   (Di, 1, K) + bias (Di)   causal depthwise, left padding K-1
//   x_proj   (R+2N, Di) -> (delta, B, C)
//   dt_proj  (Di, R) + bias (Di)      delta = softplus(dt_proj(delta))
//   A_log    (Di, N)    A = -exp(A_log)
//   D        (Di)
//   out_proj (D, Di)
// Inner-MoE variants replace in_proj by conv_proj/gate_proj (each a Linear or a Switch MoE
// D -> Di) and/or out_proj by a Switch MoE Di -> D.
//
// Between its projections the layer calls one op, mamba_inner (core/ops/mamba_ops.h: conv, the
// x_proj and dt_proj products and the scan), in the ops' channel-major layout (B, Di, L) with L
// contiguous: in_proj is computed as W_in @ h^T straight into (2Di, B*L), so x and z are channel
// slices of it without a copy, and x_dbl, delta and y land channel-major the same way.
#pragma once

#include <torch/torch.h>

#include "core/models/mixer.h"
#include "core/models/switch_moe.h"
#include "core/ops/mamba_ops.h"

namespace mmlab {

struct MambaLayerOptions {
  explicit MambaLayerOptions(int64_t d_model) : d_model_(d_model) {}
  int64_t d_inner() const { return expand_ * d_model_; }
  int64_t resolved_dt_rank() const { return dt_rank_ > 0 ? dt_rank_ : (d_model_ + 15) / 16; }
  /// model width D
  TORCH_ARG(int64_t, d_model);
  /// SSM state size N
  TORCH_ARG(int64_t, d_state) = 16;
  /// causal conv kernel K
  TORCH_ARG(int64_t, d_conv) = 4;
  /// Di = expand * D
  TORCH_ARG(int64_t, expand) = 2;
  /// R; 0 = ceil(D / 16)
  TORCH_ARG(int64_t, dt_rank) = 0;
  TORCH_ARG(double, dt_min) = 0.001;
  TORCH_ARG(double, dt_max) = 0.1;
  TORCH_ARG(double, dt_init_floor) = 1e-4;
  /// Switch MoE replacing the conv projection (x half of in_proj)
  TORCH_ARG(bool, conv_moe) = false;
  /// Switch MoE replacing the gate projection (z half of in_proj)
  TORCH_ARG(bool, gate_moe) = false;
  /// Switch MoE replacing out_proj
  TORCH_ARG(bool, out_moe) = false;
  /// n_expert, d_expert, capacity, aux weight of inner MoEs (d_in/d_out are set per projection)
  TORCH_ARG(SwitchMoeOptions, moe) = SwitchMoeOptions(0, 0, 0, 1);
};

/// The arguments of the ops one forward() of a layer passes, as meta tensors in the layouts
/// forward() makes them: a run checks its implementation choice against these before it starts.
struct MambaForwardOpArgs {
  ops::MambaInnerArgs inner;
  // The calls of mamba_inner's reference (which dispatch on their own).
  ops::CausalConv1dArgs conv;
  ops::SelectiveScanArgs scan;
};

class MambaLayerImpl : public MixerImpl {
 public:
  explicit MambaLayerImpl(const MambaLayerOptions& options);
  void reset_parameters();

  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override;
  void collect_moe(std::vector<SwitchMoeImpl*>& out) override;
  /// true when an input projection is a MoE (its router reads the input).
  bool reads_input_in_fp32() const override { return conv_proj_moe || gate_proj_moe; }

  /// What forward() passes its ops for a (B, L) batch whose activations (projection outputs)
  /// are `act` (bf16 under autocast) and parameters fp32.
  static MambaForwardOpArgs forward_op_args(const MambaLayerOptions& options, int64_t B, int64_t L,
                                            torch::ScalarType act, bool needs_grad);

  MambaLayerOptions options;
  torch::nn::Linear in_proj{nullptr};    // (2Di, D), absent when an input projection is a MoE
  torch::nn::Linear conv_proj{nullptr};  // (Di, D) when only gate_moe
  torch::nn::Linear gate_proj{nullptr};  // (Di, D) when only conv_moe
  SwitchMoe conv_proj_moe{nullptr};      // registered as "conv_proj"
  SwitchMoe gate_proj_moe{nullptr};      // registered as "gate_proj"
  torch::nn::Conv1d conv1d{nullptr};
  torch::nn::Linear x_proj{nullptr};
  torch::nn::Linear dt_proj{nullptr};
  torch::Tensor A_log;  // (Di, N)
  torch::Tensor D;      // (Di)
  torch::nn::Linear out_proj{nullptr};
  SwitchMoe out_proj_moe{nullptr};  // registered as "out_proj"

 private:
  /// (B, L, D) -> x (B, Di, L), z (B, Di, L), L contiguous (forward)
  std::pair<torch::Tensor, torch::Tensor> project_in_channel_major(const torch::Tensor& h);
  /// (B, L, D) -> x (B, L, Di), z (B, L, Di) (decode: one token's channels contiguous)
  std::pair<torch::Tensor, torch::Tensor> project_in_token_major(const torch::Tensor& h);
  /// (B, L, Di) -> (B, L, D)
  torch::Tensor project_out(const torch::Tensor& y, bool limit_capacity);
};
TORCH_MODULE(MambaLayer);

}  // namespace mmlab
