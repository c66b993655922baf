// SPDX-License-Identifier: GPL-3.0-or-later
// The Mamba layer's training kernels (causal conv1d, selective scan) run on tensors: what they
// take (why_not), their launch parameters, outputs and gradients. Shared by the glue of the
// causal_conv1d and selective_scan ops (one kernel each) and of mamba_inner (both, with the
// products between them), so each kernel's parameters are filled in one place. CPU LibTorch
// headers only; launches go to compat::current_cuda_stream().
//
// Shapes: B batch, L length, Di d_inner, N d_state, K conv width.
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/ops/mamba_ops.h"
#include "kernels/src/selective_scan.h"

namespace mmlab::kernels {

// --- causal conv1d -------------------------------------------------------------------------------

/// "" when the weight's width K is one the kernels have (2..4).
std::string causal_conv1d_width_why_not(const torch::Tensor& weight);

/// Why the conv kernels cannot run `a` ("" if they can): dims, width, dtypes, devices, layout.
std::string causal_conv1d_why_not(const ops::CausalConv1dArgs& a);

/// Throws std::invalid_argument unless weight is (Di, K) and bias (if defined) (Di), both on
/// x's device.
void check_causal_conv1d_shapes(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

/// act(bias + conv(x)), (B, Di, L) contiguous in x's dtype; bias may be undefined.
torch::Tensor run_causal_conv1d_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                        const torch::Tensor& bias, bool silu);

struct CausalConv1dGrads {
  torch::Tensor dx;       // (B, Di, L) x's dtype and, where x is dense, strides
  torch::Tensor dweight;  // (Di, K)    weight's dtype
  torch::Tensor dbias;    // (Di)       bias's dtype; undefined without a bias
};

/// The gradients of run_causal_conv1d_forward(x, weight, bias, silu) for `dout` (B, Di, L), of
/// any dtype and strides (the pre-activation is recomputed from x).
CausalConv1dGrads run_causal_conv1d_backward(const torch::Tensor& x, const torch::Tensor& weight,
                                             const torch::Tensor& bias, bool silu,
                                             const torch::Tensor& dout);

// --- selective scan ------------------------------------------------------------------------------

/// Why the scan kernels cannot run `a` ("" if they can); sizes, strides and dtypes only.
std::string selective_scan_why_not(const ops::SelectiveScanArgs& a);

struct ScanForward {
  torch::Tensor y;           // (B, Di, L)           u's dtype, z's layout where dense
  torch::Tensor last_state;  // (B, Di, N)           fp32, when asked
  torch::Tensor carries;     // (B, n_chunks, N, Di) fp32, when kept for a backward
};

/// Runs the forward kernel; B, C, A, D, delta_bias must be contiguous, D, z and delta_bias may be
/// undefined. `tiles_per_chunk` (carries kept every so many tiles) is for kernels/dev; the
/// backward must be given the same.
ScanForward run_selective_scan_forward(const torch::Tensor& u, const torch::Tensor& delta,
                                       const torch::Tensor& A, const torch::Tensor& B,
                                       const torch::Tensor& C, const torch::Tensor& D,
                                       const torch::Tensor& z, const torch::Tensor& delta_bias,
                                       bool delta_softplus, bool want_last_state, bool keep_carries,
                                       int tiles_per_chunk = kSelectiveScanTilesPerChunk);

struct ScanGrads {
  torch::Tensor du, ddelta, dz;   // (B, Di, L) u's dtype, contiguous; dz only with z, in its layout
  torch::Tensor dA;               // (Di, N)    fp32
  torch::Tensor dB, dC;           // (B, N, L)  fp32
  torch::Tensor dD, ddelta_bias;  // (Di)      fp32, only with D / delta_bias
};

/// Runs the backward kernel on the inputs of a forward that kept `carries`. dout (B, Di, L) may
/// be of any dtype and batch/channel strides, or undefined (zero); dlast (B, Di, N), the gradient
/// of last_state, may be undefined.
ScanGrads run_selective_scan_backward(const torch::Tensor& u, const torch::Tensor& delta,
                                      const torch::Tensor& A, const torch::Tensor& B,
                                      const torch::Tensor& C, const torch::Tensor& D,
                                      const torch::Tensor& z, const torch::Tensor& delta_bias,
                                      bool delta_softplus, const torch::Tensor& carries,
                                      const torch::Tensor& dout, const torch::Tensor& dlast,
                                      int tiles_per_chunk = kSelectiveScanTilesPerChunk);

}  // namespace mmlab::kernels
