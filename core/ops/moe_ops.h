// SPDX-License-Identifier: GPL-3.0-or-later
// The Switch MoE's dispatch, experts and combine as one op (top-1 routing with the paper's
// capacity): every token goes to its router's argmax expert; the first `capacity` tokens of each
// expert in token order are kept, the others get a zero output (only the residual carries them).
// Output = p_I(x) E_I(x), E_i(x) = ReLU(x w1[i]) w2[i]. The router (and its aux loss) stays in
// the model; the op takes its fp32 probabilities.
//
// Shapes: T tokens, Din/Dout widths, X experts, De expert width, C capacity.
#pragma once

#include <torch/torch.h>

#include "core/ops/registry.h"

namespace mmlab::ops {

struct SwitchMoeArgs : CallInfo {
  torch::Tensor x;       // (T, Din) any float dtype; the experts run in its dtype
  torch::Tensor probs;   // (T, X)   fp32 router softmax
  torch::Tensor w1;      // (X, Din, De) fp32
  torch::Tensor w2;      // (X, De, Dout) fp32
  int64_t capacity = 0;  // C: tokens kept per expert; T keeps them all
};

struct SwitchMoeResult {
  torch::Tensor y;        // (T, Dout) in x's dtype
  torch::Tensor counts;   // (X) int64: tokens whose argmax is each expert, before truncation
  torch::Tensor dropped;  // () int64 on x's device: tokens over capacity
};

using SwitchMoeRegistry = Registry<SwitchMoeArgs, SwitchMoeResult>;
SwitchMoeRegistry& switch_moe_registry();

/// Plain tensor code: the kept tokens found with nonzero() (a host read), gathered into an
/// (X, C, Din) buffer, two batched matmuls, scattered back.
SwitchMoeResult switch_moe_reference(const SwitchMoeArgs& a);

/// The same without reading the device: every token has a slot (dropped ones a spare row that
/// no output reads), and the combine masks instead of selecting; shapes depend only on T, X, C.
/// The "sync_free" implementation on CUDA; any device.
SwitchMoeResult switch_moe_sync_free(const SwitchMoeArgs& a);

/// The call site: fills needs_grad, picks, runs.
SwitchMoeResult switch_moe(SwitchMoeArgs a);

}  // namespace mmlab::ops
