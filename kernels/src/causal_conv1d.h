// SPDX-License-Identifier: GPL-3.0-or-later
// Causal depthwise conv1d (forward, backward) and its decode step, on raw pointers.
//   y[b,c,t] = act(bias[c] + sum_k w[c,k] x[b,c,t-K+1+k]),  x = 0 left of t = 0,  act = SiLU or id
//
// Shapes: B batch, Di channels (d_inner), L length, K width (2..4).
//   x, dout   (B, Di, L)  L stride 1, batch/channel strides free
//   dx        (B, Di, L)  L stride 1, batch/channel strides free, x's type
//   out       (B, Di, L)  contiguous, x's type
//   weight    (Di, K), bias (Di): any strides, fp32 or bf16
// The launchers return nullptr on success, else CUDA's error text for the glue to throw.
#pragma once

#include <cstdint>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

struct CausalConv1dParams {
  int64_t batch = 0, channels = 0, length = 0;
  int width = 0;  // K
  bool silu = false;
  ElementType x_type = ElementType::kFloat32;  // also of out, dout and dx
  const void* x = nullptr;                     // (B, Di, L)
  int64_t x_batch_stride = 0, x_channel_stride = 0;
  StridedInput weight;  // (Di, K)
  StridedInput bias;    // (Di), data nullptr when absent
  void* out = nullptr;  // (B, Di, L) forward output
  // Backward only.
  const void* dout = nullptr;  // (B, Di, L)
  int64_t dout_batch_stride = 0, dout_channel_stride = 0;
  void* dx = nullptr;  // (B, Di, L)
  int64_t dx_batch_stride = 0, dx_channel_stride = 0;
  // (B, Di, K + 1) fp32: per (batch, channel) row, the sum over the row of dweight (first K) and
  // dbias (last); the glue sums over the batch, so no atomics are needed.
  float* dweight_bias_partial = nullptr;
};

const char* causal_conv1d_fwd(const CausalConv1dParams& p, void* stream);
const char* causal_conv1d_bwd(const CausalConv1dParams& p, void* stream);

/// One decode step: state (B, Di, K) shifted left by one with x at the end (in place), then
/// out[b,c] = act(bias[c] + sum_k w[c,k] state[b,c,k]).
struct CausalConv1dUpdateParams {
  int64_t batch = 0, channels = 0;
  int width = 0;  // K
  bool silu = false;
  void* state = nullptr;  // (B, Di, K)
  ElementType state_type = ElementType::kFloat32;
  int64_t state_batch_stride = 0, state_channel_stride = 0, state_width_stride = 0;
  StridedInput x;       // (B, Di)
  StridedInput weight;  // (Di, K)
  StridedInput bias;    // (Di), data nullptr when absent
  void* out = nullptr;  // (B, Di) contiguous
  ElementType out_type = ElementType::kFloat32;
};

const char* causal_conv1d_update(const CausalConv1dUpdateParams& p, void* stream);

}  // namespace mmlab::kernels
