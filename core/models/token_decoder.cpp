// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/token_decoder.h"

#include <exception>

namespace mmlab {

TokenDecoder::TokenDecoder(LanguageModel model, std::vector<LayerCache>& caches)
    : model_(std::move(model)), caches_(caches) {}

std::string TokenDecoder::graph_blocker(const torch::Tensor& ids) const {
  if (!compat::CudaGraph::available()) return "this LibTorch has no CUDA";
  if (!ids.device().is_cuda()) return "the model is not on a GPU";
  for (const LayerSpec& spec : model_->layer_specs) {
    if (spec.kind == LayerKind::kAttention) return "attention layers grow their cache every step";
  }
  return "";
}

void TokenDecoder::capture(const torch::Tensor& ids) {
  static_ids_ = ids.clone();
  // The warm-up step runs on copies of the states, since it executes; the recorded step does not
  // run, so the real caches (and their token counts) stay as they are until the first replay.
  std::vector<LayerCache> scratch = caches_;
  for (LayerCache& c : scratch) {
    if (c.conv_state.defined()) c.conv_state = c.conv_state.clone();
    if (c.ssm_state.defined()) c.ssm_state = c.ssm_state.clone();
  }
  std::vector<int64_t> before;
  for (const LayerCache& c : caches_) before.push_back(c.position);
  graph_.capture(
      ids.device().index(), [&] { model_->decode(static_ids_, scratch); },
      [&] { static_logits_ = model_->decode(static_ids_, caches_); });
  // Recording ran the host side of the step once: what it added to each layer's token count
  // (MoE layers count none) is what every replay adds.
  position_steps_.clear();
  for (size_t i = 0; i < caches_.size(); ++i) {
    position_steps_.push_back(caches_[i].position - before[i]);
    caches_[i].position = before[i];
  }
}

torch::Tensor TokenDecoder::step(const torch::Tensor& ids) {
  if (!tried_) {
    tried_ = true;
    why_not_ = graph_blocker(ids);
    if (why_not_.empty()) {
      try {
        capture(ids);
        graph_ready_ = true;
      } catch (const std::exception& e) {
        why_not_ = std::string("recording the step failed: ") + e.what();
      }
    }
  }
  if (!graph_ready_ || ids.sizes() != static_ids_.sizes()) return model_->decode(ids, caches_);
  static_ids_.copy_(ids);
  graph_.replay();
  for (size_t i = 0; i < caches_.size(); ++i) caches_[i].position += position_steps_[i];
  return static_logits_;
}

}  // namespace mmlab
