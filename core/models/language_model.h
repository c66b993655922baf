// SPDX-License-Identifier: GPL-3.0-or-later
// One language model for every family: token embedding, a stack of pre-norm residual sub-layers
// chosen by the config's layer pattern (make_mixer decides what sits at layer i), an optional
// final norm and an (optionally tied) output head.
//
// Shapes: B batch, L length, D d_model, V vocab.
//   embedding (V, D)   lm_head (V, D)   ids (B, L) int64 -> logits (B, L, V)
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/config/config.h"
#include "core/config/layer_pattern.h"
#include "core/models/mixer.h"
#include "core/models/norm.h"
#include "core/models/switch_moe.h"

namespace mmlab {

/// (M|E): Mamba and MoE read the same normed input; outputs summed.
class ParallelMambaMoeImpl : public MixerImpl {
 public:
  ParallelMambaMoeImpl(std::shared_ptr<MixerImpl> mamba, SwitchMoe moe);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override;
  void collect_moe(std::vector<SwitchMoeImpl*>& out) override;
  bool reads_input_in_fp32() const override { return true; }

  std::shared_ptr<MixerImpl> mamba;
  SwitchMoe moe{nullptr};
};

/// h <- h + mixer(norm(h))
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(Norm norm, std::shared_ptr<MixerImpl> mixer);
  torch::Tensor forward(const torch::Tensor& h);
  torch::Tensor decode(const torch::Tensor& h, LayerCache& cache);

  Norm norm{nullptr};
  std::shared_ptr<MixerImpl> mixer;
};
TORCH_MODULE(ResidualBlock);

struct MambaLayerOptions;
/// The options of the Mamba layer that `spec` (a Mamba or parallel Mamba+MoE layer) builds.
MambaLayerOptions mamba_layer_options(const ModelConfig& config, const LayerSpec& spec);

/// The mixer for one layer of the pattern.
std::shared_ptr<MixerImpl> make_mixer(const LayerSpec& spec, const ModelConfig& config);

struct LmOutput {
  torch::Tensor logits;    // (B, L, V)
  torch::Tensor aux_loss;  // scalar: sum of the MoE layers' load-balancing losses (0 if none)
};

/// What the head reads: training and evaluation go from here to the loss without logits.
struct LmHidden {
  torch::Tensor h;         // (B, L, D) after the final norm
  torch::Tensor aux_loss;  // as in LmOutput
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  /// `config.vocab_size` must be set (> 0).
  explicit LanguageModelImpl(const ModelConfig& config);

  LmOutput forward(const torch::Tensor& ids);
  LmHidden forward_hidden(const torch::Tensor& ids);
  /// Mean cross-entropy of next-token prediction over targets (B, L), through the lm_head_loss
  /// op (which never needs the whole batch's logits at once).
  torch::Tensor next_token_loss(const LmHidden& hidden, const torch::Tensor& targets);
  /// Continues generation from `caches` (one per layer; start with an empty vector).
  torch::Tensor decode(const torch::Tensor& ids, std::vector<LayerCache>& caches);

  /// Every Switch MoE of the model in layer order (inner MoEs included).
  std::vector<SwitchMoeImpl*> moe_layers();
  /// The LM head's weight: lm_head's, or the embedding's when tied.
  torch::Tensor head_weight() const;

  ModelConfig config;
  std::vector<LayerSpec> layer_specs;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::ModuleList layers{nullptr};
  Norm norm_f{nullptr};
  torch::nn::Linear lm_head{nullptr};

 private:
  torch::Tensor head(const torch::Tensor& normed);  // (B, L, D) -> (B, L, V)
};
TORCH_MODULE(LanguageModel);

/// Number of parameters of a built model, counted from its tensors (total, with a tied head once).
int64_t count_tensor_params(torch::nn::Module& module);

}  // namespace mmlab
