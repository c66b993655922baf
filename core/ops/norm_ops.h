// SPDX-License-Identifier: GPL-3.0-or-later
// The pre-norm of every residual block and the final norm as one op: LayerNorm (weight + bias)
// or RMSNorm (weight only) over the last dimension, computed in fp32, the result in `out_dtype`.
// As one op a fused implementation reads the fp32 residual stream once and writes the bf16 input
// of the next matmul directly: with LibTorch's ops an fp32 norm, then autocast's cast of its
// output in every matmul that reads it, and in the backward those casts' gradients and a γ, β
// reduction that ran at a fifth of the card's bandwidth.
//
// Shapes: N rows (tokens), D features.
#pragma once

#include <torch/torch.h>

#include "core/ops/registry.h"

namespace mmlab::ops {

struct NormArgs : CallInfo {
  torch::Tensor x;       // (N, D)  the residual stream, fp32 (bf16 and double too)
  torch::Tensor weight;  // (D)     γ
  torch::Tensor bias;    // (D)     β; undefined for RMSNorm
  double eps = 1e-5;
  bool rms = false;  // RMSNorm: no mean subtracted, no bias
  /// The result's dtype: what the consumer reads (bf16 when it is a matmul under bf16 autocast,
  /// which would round to it anyway), else x's. Double stays double.
  torch::ScalarType out_dtype = torch::kFloat;
};  // result: (N, D) in out_dtype

using NormRegistry = Registry<NormArgs, torch::Tensor>;
NormRegistry& norm_registry();

/// Plain tensor code: the norm in fp32 (or double), then rounded once to out_dtype.
torch::Tensor norm_reference(const NormArgs& a);

/// The call site: fills needs_grad, picks, runs.
torch::Tensor norm(NormArgs a);

}  // namespace mmlab::ops
