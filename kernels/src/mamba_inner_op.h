// SPDX-License-Identifier: GPL-3.0-or-later
// The part of mamba_inner's "cuda" implementation (mamba_inner_op.cpp) between its kernels: the
// x_proj and dt_proj products and their gradients, in LibTorch ops (cuBLAS on a GPU). Plain
// tensor code on any device, so the gradient formulas are tested against autograd without a GPU.
//
// Shapes: B batch, L length, Di d_inner, N d_state, R dt_rank.
#pragma once

#include <torch/torch.h>

namespace mmlab::kernels {

/// What the scan reads from x_dbl = W_x u (B, R+2N, L): delta = W_dt x_dbl[:R], and B and C,
/// x_dbl's next N rows each, as contiguous (B, N, L) (the layout the scan kernels read).
struct InnerScanInputs {
  torch::Tensor delta;  // (B, Di, L) x_dbl's dtype
  torch::Tensor B, C;   // (B, N, L)  x_dbl's dtype, contiguous
};
InnerScanInputs inner_scan_inputs(const torch::Tensor& dt_proj_weight, const torch::Tensor& x_dbl,
                                  int64_t N);

struct InnerProductGrads {
  torch::Tensor du;              // (B, Di, L)  the total gradient of u, in u's dtype
  torch::Tensor dx_proj_weight;  // (R+2N, Di)  fp32 (double for double inputs)
  torch::Tensor dt_proj_weight;  // (Di, R)     fp32 (double for double inputs)
};

/// The gradients of x_dbl = W_x u and delta = W_dt x_dbl[:R] given the scan's gradients of
/// delta, B and C (any dtype; cast to x_dbl's) and of u: du_scan is the scan's own du, to which
/// W_x^T dx_dbl is added in place (so no second (B, Di, L) buffer exists). The weights' gradients
/// are summed over the batch in fp32
/// (in double for double inputs, which only the CPU test passes).
InnerProductGrads inner_products_backward(const torch::Tensor& x_proj_weight,
                                          const torch::Tensor& dt_proj_weight,
                                          const torch::Tensor& u, const torch::Tensor& x_dbl,
                                          const torch::Tensor& ddelta, const torch::Tensor& dB,
                                          const torch::Tensor& dC, torch::Tensor du_scan);

}  // namespace mmlab::kernels
