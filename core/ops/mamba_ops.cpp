// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/mamba_ops.h"

#include <initializer_list>

#include "core/ops/precision.h"
#include "core/ops/selective_scan.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {

namespace {

torch::Tensor fp32_or_undefined(const torch::Tensor& t) {
  return t.defined() ? at_least_fp32(t) : t;
}

/// (B, C, L) -> (B, L, C) contiguous, in at least fp32: the layout the sequential scan reads.
/// The copy keeps its arithmetic element for element what it was when the model fed it (B, L, Di).
torch::Tensor length_major_fp32(const torch::Tensor& t) {
  return at_least_fp32(t).transpose(1, 2).contiguous();
}

bool needs_grad(std::initializer_list<const torch::Tensor*> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const torch::Tensor* t : inputs) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

}  // namespace

SelectiveScanRegistry& selective_scan_registry() {
  static SelectiveScanRegistry registry("selective_scan", selective_scan_reference);
  return registry;
}

SelectiveStateUpdateRegistry& selective_state_update_registry() {
  static SelectiveStateUpdateRegistry registry("selective_state_update",
                                               selective_state_update_reference);
  return registry;
}

CausalConv1dRegistry& causal_conv1d_registry() {
  static CausalConv1dRegistry registry("causal_conv1d", causal_conv1d_reference);
  return registry;
}

CausalConv1dUpdateRegistry& causal_conv1d_update_registry() {
  static CausalConv1dUpdateRegistry registry("causal_conv1d_update",
                                             causal_conv1d_update_reference);
  return registry;
}

MambaInnerRegistry& mamba_inner_registry() {
  static MambaInnerRegistry registry("mamba_inner", mamba_inner_reference);
  return registry;
}

torch::Tensor left_multiply(const torch::Tensor& W, const torch::Tensor& x) {
  return torch::bmm(W.to(x.scalar_type()).unsqueeze(0).expand({x.size(0), W.size(0), W.size(1)}),
                    x);
}

SelectiveScanResult selective_scan_reference(const SelectiveScanArgs& a) {
  compat::NoAutocast fp32;
  torch::Tensor delta = at_least_fp32(a.delta);  // (B, Di, L)
  if (a.delta_bias.defined()) delta = delta + at_least_fp32(a.delta_bias).unsqueeze(-1);
  if (a.delta_softplus) delta = torch::softplus(delta);
  ScanResult r = selective_scan_sequential(
      length_major_fp32(a.u), delta.transpose(1, 2).contiguous(), at_least_fp32(a.A),
      length_major_fp32(a.B), length_major_fp32(a.C), fp32_or_undefined(a.D));
  torch::Tensor y = r.y;  // (B, L, Di)
  if (a.z.defined()) y = y * torch::silu(length_major_fp32(a.z));
  SelectiveScanResult out;
  out.y = y.to(a.u.scalar_type()).transpose(1, 2);  // (B, Di, L)
  if (a.return_last_state) out.last_state = r.h_last;
  return out;
}

torch::Tensor selective_state_update_reference(const SelectiveStateUpdateArgs& a) {
  compat::NoAutocast fp32;
  torch::Tensor x = at_least_fp32(a.x);    // (B, Di)
  torch::Tensor dt = at_least_fp32(a.dt);  // (B, Di)
  if (a.dt_bias.defined()) dt = dt + at_least_fp32(a.dt_bias);
  if (a.dt_softplus) dt = torch::softplus(dt);
  // The order of the sequential scan's step, so one decode step equals one step of the scan.
  auto dA = torch::exp(dt.unsqueeze(-1) * at_least_fp32(a.A));          // (B, Di, N)
  auto dBx = (dt * x).unsqueeze(-1) * at_least_fp32(a.B).unsqueeze(1);  // (B, Di, N)
  auto h = dA * a.state + dBx;                                          // (B, Di, N)
  a.state.copy_(h);
  auto y = torch::matmul(h, at_least_fp32(a.C).unsqueeze(-1)).squeeze(-1);  // (B, Di)
  if (a.D.defined()) y = y + x * at_least_fp32(a.D);
  if (a.z.defined()) y = y * torch::silu(at_least_fp32(a.z));
  return y.to(a.x.scalar_type());
}

torch::Tensor causal_conv1d_reference(const CausalConv1dArgs& a) {
  // K shifted multiply-adds instead of a grouped convolution: LibTorch's CPU grouped convolution
  // falls back to a per-group im2col that made a whole training step ~50x slower. The arithmetic
  // is in at least fp32 and the output rounded once, as in the decode step's reference and the
  // kernel: rounding a bf16 input after every tap made the reference, not the kernel, the one
  // that departs from the op's exact value.
  const int64_t L = a.x.size(2), K = a.weight.size(1);
  auto w = at_least_fp32(a.weight);                                      // (Di, K)
  auto padded = torch::constant_pad_nd(at_least_fp32(a.x), {K - 1, 0});  // (B, Di, L+K-1)
  auto tap = [&](int64_t k) { return padded.narrow(2, k, L) * w.select(1, k).unsqueeze(-1); };
  torch::Tensor y = a.bias.defined() ? at_least_fp32(a.bias).unsqueeze(-1) + tap(0) : tap(0);
  for (int64_t k = 1; k < K; ++k) y = y + tap(k);  // (B, Di, L)
  if (a.silu) y = torch::silu(y);
  return y.to(a.x.scalar_type()).contiguous();
}

torch::Tensor causal_conv1d_update_reference(const CausalConv1dUpdateArgs& a) {
  const torch::Tensor& state = a.conv_state;  // (B, Di, K), updated in place
  const int64_t K = state.size(2);
  state.copy_(
      torch::cat({state.narrow(2, 1, K - 1), a.x.unsqueeze(-1).to(state.scalar_type())}, -1));
  auto y = (at_least_fp32(state) * at_least_fp32(a.weight)).sum(-1);  // (B, Di)
  if (a.bias.defined()) y = y + at_least_fp32(a.bias);
  if (a.silu) y = torch::silu(y);
  return y.to(a.x.scalar_type());
}

torch::Tensor mamba_inner_reference(const MambaInnerArgs& a) {
  const int64_t R = a.dt_proj_weight.size(1), N = a.A.size(1);
  CausalConv1dArgs conv;
  conv.x = a.x;
  conv.weight = a.conv_weight;
  conv.bias = a.conv_bias;
  conv.silu = true;
  auto u = causal_conv1d(conv);  // (B, Di, L)

  // The products multiply channel-major activations from the left, so u is never transposed
  // into a token-major copy, forward or back.
  auto x_dbl = left_multiply(a.x_proj_weight, u);  // (B, R+2N, L)
  SelectiveScanArgs scan;
  scan.u = u;
  scan.delta = left_multiply(a.dt_proj_weight, x_dbl.narrow(1, 0, R));  // (B, Di, L)
  scan.A = a.A;
  scan.B = x_dbl.narrow(1, R, N).contiguous();      // (B, N, L)
  scan.C = x_dbl.narrow(1, R + N, N).contiguous();  // (B, N, L)
  scan.D = a.D;
  scan.z = a.z;
  scan.delta_bias = a.dt_proj_bias;
  scan.delta_softplus = true;
  return selective_scan(scan).y;  // (B, Di, L)
}

SelectiveScanResult selective_scan(SelectiveScanArgs a) {
  a.needs_grad = needs_grad({&a.u, &a.delta, &a.A, &a.B, &a.C, &a.D, &a.z, &a.delta_bias});
  return selective_scan_registry()(a.u.device().type(), a);
}

torch::Tensor selective_state_update(SelectiveStateUpdateArgs a) {
  a.needs_grad = needs_grad({&a.state, &a.x, &a.dt, &a.A, &a.B, &a.C, &a.D, &a.z, &a.dt_bias});
  return selective_state_update_registry()(a.x.device().type(), a);
}

torch::Tensor causal_conv1d(CausalConv1dArgs a) {
  a.needs_grad = needs_grad({&a.x, &a.weight, &a.bias});
  return causal_conv1d_registry()(a.x.device().type(), a);
}

torch::Tensor causal_conv1d_update(CausalConv1dUpdateArgs a) {
  a.needs_grad = needs_grad({&a.conv_state, &a.x, &a.weight, &a.bias});
  return causal_conv1d_update_registry()(a.x.device().type(), a);
}

torch::Tensor mamba_inner(MambaInnerArgs a) {
  a.needs_grad = needs_grad({&a.x, &a.z, &a.conv_weight, &a.conv_bias, &a.x_proj_weight,
                             &a.dt_proj_weight, &a.dt_proj_bias, &a.A, &a.D});
  a.compute_dtype = matmul_dtype(a.x);
  return mamba_inner_registry()(a.x.device().type(), a);
}

}  // namespace mmlab::ops
