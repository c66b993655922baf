// SPDX-License-Identifier: GPL-3.0-or-later
// The output head and its loss as one op: mean cross-entropy of softmax(h W^T) against the next
// tokens. As one op a fused implementation never holds the (tokens x vocabulary) logits of the
// whole batch in fp32 (13 GB at 256 x 256 tokens and GPT-2's 50,257 words): it goes chunk by
// chunk and computes the gradient on the way (llm.c's fused classifier).
//
// Shapes: N tokens, D d_model, V vocabulary.
#pragma once

#include <torch/torch.h>

#include "core/ops/registry.h"

namespace mmlab::ops {

struct LmHeadLossArgs : CallInfo {
  torch::Tensor h;        // (N, D)  the final norm's output, any float dtype
  torch::Tensor weight;   // (V, D)  the head (or the tied embedding), fp32
  torch::Tensor targets;  // (N)     int64 token ids in [0, V)
  /// The matmuls' dtype (inputs rounded to it, fp32 accumulation), set by lm_head_loss(): bf16
  /// under bf16 autocast, else h's dtype. The softmax and the loss are fp32 either way.
  torch::ScalarType compute_dtype = torch::kFloat;
};  // result: the mean loss over the N tokens, an fp32 (or double) scalar

using LmHeadLossRegistry = Registry<LmHeadLossArgs, torch::Tensor>;
LmHeadLossRegistry& lm_head_loss_registry();

/// Plain tensor code: the logits in compute_dtype, then cross_entropy in fp32.
torch::Tensor lm_head_loss_reference(const LmHeadLossArgs& a);

/// The call site: fills needs_grad and compute_dtype, picks, runs.
torch::Tensor lm_head_loss(LmHeadLossArgs a);

}  // namespace mmlab::ops
