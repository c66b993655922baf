// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/selective_scan.h"

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

namespace {

// The scan always runs in fp32, whatever the surrounding autocast does.
struct Fp32Inputs {
  torch::Tensor u, delta, A, Bm, Cm, D;
};

Fp32Inputs to_fp32(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                   const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D) {
  return {at_least_fp32(u),  at_least_fp32(delta), at_least_fp32(A),
          at_least_fp32(Bm), at_least_fp32(Cm),    D.defined() ? at_least_fp32(D) : D};
}

torch::Tensor initial_state(const torch::Tensor& h0, const Fp32Inputs& in) {
  if (h0.defined()) return h0.to(in.u.scalar_type());
  return torch::zeros({in.u.size(0), in.u.size(2), in.A.size(1)}, in.u.options());
}

}  // namespace

ScanResult selective_scan_sequential(const torch::Tensor& u_in, const torch::Tensor& delta_in,
                                     const torch::Tensor& A_in, const torch::Tensor& Bm_in,
                                     const torch::Tensor& Cm_in, const torch::Tensor& D_in,
                                     const torch::Tensor& h0) {
  compat::NoAutocast fp32;
  Fp32Inputs in = to_fp32(u_in, delta_in, A_in, Bm_in, Cm_in, D_in);
  const int64_t L = in.u.size(1);
  auto dA = torch::exp(in.delta.unsqueeze(-1) * in.A);              // (B, L, Di, N)
  auto dBu = (in.delta * in.u).unsqueeze(-1) * in.Bm.unsqueeze(2);  // (B, L, Di, N)
  torch::Tensor h = initial_state(h0, in);                          // (B, Di, N)
  // unbind, not select(1, t): the backward of each select materialises a zero tensor of the full
  // (B, L, Di, N) size, which made the backward O(L^2); unbind's backward is one stack.
  auto dA_t = dA.unbind(1), dBu_t = dBu.unbind(1), C_t = in.Cm.unbind(1);
  std::vector<torch::Tensor> ys;
  ys.reserve(static_cast<size_t>(L));
  for (int64_t t = 0; t < L; ++t) {
    h = dA_t[t] * h + dBu_t[t];
    ys.push_back(torch::matmul(h, C_t[t].unsqueeze(-1)).squeeze(-1));  // (B, Di)
  }
  auto y = torch::stack(ys, 1);  // (B, L, Di)
  if (in.D.defined()) y = y + in.u * in.D;
  return {y, h};
}

ScanResult selective_scan_chunked(const torch::Tensor& u_in, const torch::Tensor& delta_in,
                                  const torch::Tensor& A_in, const torch::Tensor& Bm_in,
                                  const torch::Tensor& Cm_in, const torch::Tensor& D_in,
                                  const torch::Tensor& h0, int64_t chunk) {
  compat::NoAutocast fp32;
  Fp32Inputs in = to_fp32(u_in, delta_in, A_in, Bm_in, Cm_in, D_in);
  torch::Tensor h = initial_state(h0, in);  // (B, Di, N)
  std::vector<torch::Tensor> ys;
  // split (backward: one cat) rather than slicing, for the reason given in the sequential form.
  auto us = in.u.split(chunk, 1), deltas = in.delta.split(chunk, 1);
  auto Bs = in.Bm.split(chunk, 1), Cs = in.Cm.split(chunk, 1);
  for (size_t c = 0; c < us.size(); ++c) {
    const torch::Tensor& u = us[c];          // (B, T, Di)
    const torch::Tensor& delta = deltas[c];  // (B, T, Di)
    const torch::Tensor& Bm = Bs[c];         // (B, T, N)
    const torch::Tensor& Cm = Cs[c];         // (B, T, N)
    const int64_t T = u.size(1);
    auto S = torch::cumsum(delta.unsqueeze(-1) * in.A, 1);  // (B, T, Di, N), non-increasing
    auto x = (delta * u).unsqueeze(-1) * Bm.unsqueeze(2);   // (B, T, Di, N)
    // decay[t, s] = exp(S_t - S_s) for s <= t, 0 above the diagonal; the masked_fill happens
    // before exp so no positive exponent is ever evaluated.
    auto diff = S.unsqueeze(2) - S.unsqueeze(1);  // (B, T, T, Di, N): [b, t, s]
    auto causal = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(u.device()))
                      .tril()
                      .view({1, T, T, 1, 1});
    auto decay = torch::exp(diff.masked_fill(causal.logical_not(), -INFINITY));
    auto hs = (decay * x.unsqueeze(1)).sum(2) + torch::exp(S) * h.unsqueeze(1);  // (B, T, Di, N)
    ys.push_back(torch::matmul(hs, Cm.unsqueeze(-1)).squeeze(-1));               // (B, T, Di)
    h = hs.select(1, T - 1);
  }
  auto y = torch::cat(ys, 1);  // (B, L, Di)
  if (in.D.defined()) y = y + in.u * in.D;
  return {y, h};
}

}  // namespace mmlab
