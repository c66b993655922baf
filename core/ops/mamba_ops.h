// SPDX-License-Identifier: GPL-3.0-or-later
// The ops of the Mamba layer, with the signatures of the fused CUDA kernels (mamba_ssm's
// selective_scan_fn / selective_state_update and causal-conv1d's causal_conv1d_fn / _update).
// Layout is channel-major, as the kernels read it: (B, Di, L) with L contiguous (stride 1);
// batch and channel strides are free, so a (B, 2Di, L) in_proj output can be split without a copy.
//
// Shapes: B batch, L length, Di d_inner, N d_state, K conv width, R dt_rank.
#pragma once

#include <torch/torch.h>

#include "core/ops/registry.h"

namespace mmlab::ops {

struct SelectiveScanArgs : CallInfo {
  torch::Tensor u;           // (B, Di, L)  bf16 or fp32
  torch::Tensor delta;       // (B, Di, L)  u's dtype; before bias/softplus when delta_softplus
  torch::Tensor A;           // (Di, N)     fp32, negative
  torch::Tensor B;           // (B, N, L)   bf16 or fp32
  torch::Tensor C;           // (B, N, L)   bf16 or fp32
  torch::Tensor D;           // (Di)        fp32, optional: y += D * u
  torch::Tensor z;           // (B, Di, L)  optional: y *= silu(z)
  torch::Tensor delta_bias;  // (Di)        fp32, optional: delta += delta_bias before softplus
  bool delta_softplus = false;
  bool return_last_state = false;
};

struct SelectiveScanResult {
  torch::Tensor y;           // (B, Di, L)  u's dtype, L contiguous (the kernel: z's layout)
  torch::Tensor last_state;  // (B, Di, N)  fp32; defined only with return_last_state
};

/// One step of the recurrence for decoding: updates `state` in place, returns y.
struct SelectiveStateUpdateArgs : CallInfo {
  torch::Tensor state;    // (B, Di, N)  fp32, updated in place
  torch::Tensor x;        // (B, Di)
  torch::Tensor dt;       // (B, Di)     before bias/softplus when dt_softplus
  torch::Tensor A;        // (Di, N)     fp32
  torch::Tensor B;        // (B, N)
  torch::Tensor C;        // (B, N)
  torch::Tensor D;        // (Di)        fp32, optional
  torch::Tensor z;        // (B, Di)     optional
  torch::Tensor dt_bias;  // (Di)        fp32, optional
  bool dt_softplus = false;
};  // result: y (B, Di) in x's dtype

/// Causal depthwise conv1d with left padding K-1: y[b,c,t] = bias[c] + sum_k w[c,k] x[b,c,t-K+1+k].
struct CausalConv1dArgs : CallInfo {
  torch::Tensor x;       // (B, Di, L)  L contiguous
  torch::Tensor weight;  // (Di, K)     K in 2..4
  torch::Tensor bias;    // (Di)        optional
  bool silu = false;
};  // result: (B, Di, L) contiguous, x's dtype

/// Decode step of the conv: shifts `conv_state` left by one, puts x at the end, returns
/// bias + sum_k w[c,k] state[b,c,k] (SiLU'd if asked).
struct CausalConv1dUpdateArgs : CallInfo {
  torch::Tensor conv_state;  // (B, Di, K)  updated in place
  torch::Tensor x;           // (B, Di)
  torch::Tensor weight;      // (Di, K)
  torch::Tensor bias;        // (Di)        optional
  bool silu = false;
};  // result: (B, Di)

/// The layer between its input and output projections (mamba_ssm's mamba_inner_fn without
/// in_proj and out_proj), as one op:
///   u = silu(causal_conv1d(x)),  x_dbl = W_x u,  delta = W_dt x_dbl[:R],
///   y = selective_scan(u, delta, A, B = x_dbl[R:R+N], C = x_dbl[R+N:], D, z, dt_bias, softplus).
/// One op so that a fused implementation can keep only x, z, x_dbl and the scan's carries for the
/// backward and recompute u and delta there (mamba's checkpoint level 1): two (B, Di, L) tensors
/// per layer fewer held from the forward to the backward.
struct MambaInnerArgs : CallInfo {
  torch::Tensor x;               // (B, Di, L)  the conv's input, L contiguous
  torch::Tensor z;               // (B, Di, L)  the gate, x's dtype, L contiguous
  torch::Tensor conv_weight;     // (Di, K)
  torch::Tensor conv_bias;       // (Di)
  torch::Tensor x_proj_weight;   // (R+2N, Di)
  torch::Tensor dt_proj_weight;  // (Di, R)
  torch::Tensor dt_proj_bias;    // (Di)        fp32
  torch::Tensor A;               // (Di, N)     fp32, negative
  torch::Tensor D;               // (Di)        fp32
  /// The dtype the two products come out in, set by mamba_inner(): autocast's under CUDA
  /// autocast, else x's (the products cast their weight to x's dtype).
  torch::ScalarType compute_dtype = torch::kFloat;
};  // result: y (B, Di, L) in x's dtype, gated, before the output projection

/// W (O, C) times each batch's (C, L) matrix: (B, C, L) -> (B, O, L). The weight is cast to x's
/// dtype and broadcast over the batch with stride 0, so no operand is copied (matmul's folding
/// would copy x into token-major rows, and autocast would materialise the broadcast). The
/// products of mamba_inner, and the layer's output projection of a y that is not channel-major.
torch::Tensor left_multiply(const torch::Tensor& W, const torch::Tensor& x);

using SelectiveScanRegistry = Registry<SelectiveScanArgs, SelectiveScanResult>;
using SelectiveStateUpdateRegistry = Registry<SelectiveStateUpdateArgs, torch::Tensor>;
using CausalConv1dRegistry = Registry<CausalConv1dArgs, torch::Tensor>;
using CausalConv1dUpdateRegistry = Registry<CausalConv1dUpdateArgs, torch::Tensor>;
using MambaInnerRegistry = Registry<MambaInnerArgs, torch::Tensor>;

// The tables (created on first use with the reference as their first entry).
SelectiveScanRegistry& selective_scan_registry();
SelectiveStateUpdateRegistry& selective_state_update_registry();
CausalConv1dRegistry& causal_conv1d_registry();
CausalConv1dUpdateRegistry& causal_conv1d_update_registry();
MambaInnerRegistry& mamba_inner_registry();

// The reference twins (plain tensor code, differentiable by autograd, any device).
SelectiveScanResult selective_scan_reference(const SelectiveScanArgs& a);
torch::Tensor selective_state_update_reference(const SelectiveStateUpdateArgs& a);
torch::Tensor causal_conv1d_reference(const CausalConv1dArgs& a);
torch::Tensor causal_conv1d_update_reference(const CausalConv1dUpdateArgs& a);
/// The composition above through ops::causal_conv1d and ops::selective_scan, so those two still
/// pick their own implementations.
torch::Tensor mamba_inner_reference(const MambaInnerArgs& a);

// The call sites models use: fill needs_grad, pick, run.
SelectiveScanResult selective_scan(SelectiveScanArgs a);
torch::Tensor selective_state_update(SelectiveStateUpdateArgs a);
torch::Tensor causal_conv1d(CausalConv1dArgs a);
torch::Tensor causal_conv1d_update(CausalConv1dUpdateArgs a);
torch::Tensor mamba_inner(MambaInnerArgs a);

}  // namespace mmlab::ops
