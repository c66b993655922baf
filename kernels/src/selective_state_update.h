// SPDX-License-Identifier: GPL-3.0-or-later
// One step of the selective-scan recurrence for decoding, on raw pointers:
//   dt = softplus(dt + dt_bias) (when dt_softplus; identity above 20), dA = exp(dt * A)
//   state = state * dA + dt * B * x,   y = sum_n state * C + D * x,   y *= silu(z) (when z)
//
// Shapes: B batch, Di channels (d_inner), N state size (<= kMaxStateSize).
//   state (B, Di, N) fp32, updated in place, any strides
//   x, dt, z (B, Di); A (Di, N); B, C (B, N); D, dt_bias (Di): any strides, fp32 or bf16
//   out (B, Di) contiguous
// The launcher returns nullptr on success, else CUDA's error text for the glue to throw.
#pragma once

#include <cstdint>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

constexpr int kMaxStateSize = 64;

struct SelectiveStateUpdateParams {
  int64_t batch = 0, channels = 0;
  int state_size = 0;  // N
  bool dt_softplus = false;
  float* state = nullptr;  // (B, Di, N)
  int64_t state_batch_stride = 0, state_channel_stride = 0, state_n_stride = 0;
  StridedInput x;        // (B, Di)
  StridedInput dt;       // (B, Di)
  StridedInput A;        // (Di, N)
  StridedInput B;        // (B, N)
  StridedInput C;        // (B, N)
  StridedInput D;        // (Di), data nullptr when absent
  StridedInput z;        // (B, Di), data nullptr when absent
  StridedInput dt_bias;  // (Di), data nullptr when absent
  void* out = nullptr;   // (B, Di)
  ElementType out_type = ElementType::kFloat32;
};

const char* selective_state_update(const SelectiveStateUpdateParams& p, void* stream);

}  // namespace mmlab::kernels
