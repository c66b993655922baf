// SPDX-License-Identifier: GPL-3.0-or-later
// Token-by-token decoding after a prompt. Batch-1 decode of the paper's models is a few hundred
// small kernels per token, so the host's dispatch, not the GPU, set its speed; on a GPU the step
// is recorded once as a CUDA graph and replayed with one launch per token.
//
// Shapes: B batch, V vocab.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/models/language_model.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

class TokenDecoder {
 public:
  /// `caches` must already hold the prompt (a LanguageModel::decode of it); both must outlive
  /// the decoder, and nothing else may decode with `caches` meanwhile.
  TokenDecoder(LanguageModel model, std::vector<LayerCache>& caches);

  /// ids (B, 1) on the model's device -> logits (B, 1, V), advancing the caches by one token.
  /// When graphed, the result is the graph's output tensor, overwritten by the next step.
  torch::Tensor step(const torch::Tensor& ids);

  bool graphed() const { return graph_ready_; }
  /// Why steps run op by op ("" while graphed or before the first step).
  const std::string& why_not_graphed() const { return why_not_; }

 private:
  /// "" when a CUDA graph can replay this model's step: LibTorch with CUDA, the model on a GPU,
  /// and no attention layer (its KV cache grows every step, so no two steps have equal shapes).
  std::string graph_blocker(const torch::Tensor& ids) const;
  void capture(const torch::Tensor& ids);

  LanguageModel model_;
  std::vector<LayerCache>& caches_;
  bool tried_ = false, graph_ready_ = false;
  std::string why_not_;
  compat::CudaGraph graph_;
  torch::Tensor static_ids_, static_logits_;
  std::vector<int64_t> position_steps_;  // per layer: tokens a replayed step adds to its count
};

}  // namespace mmlab
