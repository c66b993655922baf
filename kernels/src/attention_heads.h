// SPDX-License-Identifier: GPL-3.0-or-later
// ops::attention_heads on raw pointers: the qkv projection's output split into q, k, v with
// rotate-half RoPE on q and k (the math in core/ops/attention_ops.h), and its backward. fp32
// math whatever the element type; one thread per rotated pair (j, j + hd/2), in the
// projection's token-major order, so reads and writes run along memory.
//
// Shapes: B batch, L length, H heads, hd head dim (even).
//   qkv, dqkv (B, L, 3, H, hd)   q, k, v and their gradients (B, L, H, hd)   cos, sin (L, hd/2)
#pragma once

#include <cstdint>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

struct AttentionHeadsParams {
  int64_t batch = 0, length = 0, heads = 0, head_dim = 0;  // B, L, H, hd
  ElementType type = ElementType::kFloat32;                // of every tensor but cos and sin
  const float* cos = nullptr;                              // (L, hd/2) contiguous
  const float* sin = nullptr;

  // Forward: qkv with strides for (B, L, 3, H) and hd stride 1; q, k, v contiguous.
  const void* qkv = nullptr;
  int64_t qkv_stride[4] = {0, 0, 0, 0};
  void* out[3] = {nullptr, nullptr, nullptr};  // q, k, v

  // Backward: the gradients of q, k, v with strides for (B, L, H) and hd stride 1 (nullptr:
  // zero); dqkv contiguous.
  const void* grad[3] = {nullptr, nullptr, nullptr};
  int64_t grad_stride[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  void* dqkv = nullptr;
};

/// nullptr on success, else CUDA's error text.
const char* attention_heads_forward(const AttentionHeadsParams& p, void* stream);
const char* attention_heads_backward(const AttentionHeadsParams& p, void* stream);

}  // namespace mmlab::kernels
