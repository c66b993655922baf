// SPDX-License-Identifier: GPL-3.0-or-later
// The selective scan of Mamba-1, in fp32:
//   h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,   y_t = C_t . h_t + D * u_t
//
// Shapes: B batch, L length, Di d_inner, N d_state.
//   u     (B, L, Di)   input after conv + SiLU
//   delta (B, L, Di)   step sizes, already softplus'ed
//   A     (Di, N)      negative real (A = -exp(A_log))
//   Bm    (B, L, N)    input projection
//   Cm    (B, L, N)    output projection
//   D     (Di)         skip; may be undefined (no skip)
//   h0    (B, Di, N)   optional initial state
// Returns y (B, L, Di) and the final state h_L (B, Di, N).
//
// Two reference implementations in plain tensor ops (sequential, and chunked: parallel inside
// chunks), tested against each other. The model does not call them: it calls the selective_scan
// op (core/ops/mamba_ops.h), whose reference twin runs the sequential form: with autograd it is
// the faster of the two, the chunked form's (B, T, T, Di, N) decay costs more than the loop saves.
#pragma once

#include <torch/torch.h>

namespace mmlab {

struct ScanResult {
  torch::Tensor y;       // (B, L, Di)
  torch::Tensor h_last;  // (B, Di, N)
};

ScanResult selective_scan_sequential(const torch::Tensor& u, const torch::Tensor& delta,
                                     const torch::Tensor& A, const torch::Tensor& Bm,
                                     const torch::Tensor& Cm, const torch::Tensor& D,
                                     const torch::Tensor& h0 = {});

/// Chunks of `chunk` steps: inside a chunk every h_t is a sum over s <= t weighted by
/// exp(S_t - S_s) (S = running sum of delta*A, so every exponent is <= 0 and nothing overflows);
/// chunks are chained through their last state.
ScanResult selective_scan_chunked(const torch::Tensor& u, const torch::Tensor& delta,
                                  const torch::Tensor& A, const torch::Tensor& Bm,
                                  const torch::Tensor& Cm, const torch::Tensor& D,
                                  const torch::Tensor& h0 = {}, int64_t chunk = 16);

}  // namespace mmlab
