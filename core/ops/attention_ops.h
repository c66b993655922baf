// SPDX-License-Identifier: GPL-3.0-or-later
// The attention heads as one op: the qkv projection's output split into q, k and v, the rotary
// position embedding (rotate-half, RoPE) applied to q and k. With LibTorch's ops this is a
// select, two narrows, a cat, two multiplies and an add per q and k, and in the backward as
// many again plus zero-filled buffers for the select's and the narrows' gradients and a copy of
// the permuted gradient back into the projection's layout: 22.5 ms of a 97 ms Transformer-MoE25M
// step on an H200. Fused, the forward reads the projection once and writes q, k, v in
// attention's layout, and the backward writes the projection's gradient once.
//
// Shapes: B batch, L length, H heads, hd head dim (even).
//   qkv (B, L, 3, H, hd) -> q, k, v (B, H, L, hd);  rotation angle of pair j at position p:
//   p * theta^(-2j/hd), pairs (j, j + hd/2) rotated as (x1 cos - x2 sin, x2 cos + x1 sin).
#pragma once

#include <torch/torch.h>

#include <utility>

#include "core/ops/registry.h"

namespace mmlab::ops {

struct AttentionHeadsArgs : CallInfo {
  torch::Tensor qkv;   // (B, L, 3, H, hd) the projection's output viewed; fp32 or bf16
  int64_t offset = 0;  // absolute position of step 0 (decoding continues a sequence)
  double theta = 10000.0;
};

struct AttentionHeads {
  torch::Tensor q, k, v;  // (B, H, L, hd) each, qkv's dtype
};

using AttentionHeadsRegistry = Registry<AttentionHeadsArgs, AttentionHeads>;
AttentionHeadsRegistry& attention_heads_registry();

/// cos and sin of the rotation angles of positions offset .. offset+L-1: (L, hd/2) fp32 each,
/// the one definition the reference and the kernel both use. Views of a table kept per device,
/// head dim and theta (thread-safe), so a decoding step costs no operator for them.
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(int64_t L, int64_t hd, int64_t offset,
                                                     double theta, const torch::Device& device);

/// Applies rotate-half RoPE to (B, H, L, hd): the arithmetic in fp32 (double stays double), the
/// result rounded to x's dtype once.
torch::Tensor apply_rope(const torch::Tensor& x, int64_t offset, double theta);

/// Plain tensor code: q and k through apply_rope, v a view of qkv.
AttentionHeads attention_heads_reference(const AttentionHeadsArgs& a);

/// The call site: fills needs_grad, picks, runs.
AttentionHeads attention_heads(AttentionHeadsArgs a);

}  // namespace mmlab::ops
