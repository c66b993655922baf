// SPDX-License-Identifier: GPL-3.0-or-later
// Glue of the fused selective scan: the "cuda" implementation of ops::selective_scan_registry().
// Wraps the kernels' forward and backward (kernels/src/mamba_launch.h) in an autograd Function
// that saves only the inputs and the per-chunk carry states. CPU LibTorch headers only.
//
// Shapes: B batch, L length, Di d_inner, N d_state.
#include <torch/torch.h>

#include <vector>

#include "core/ops/mamba_ops.h"
#include "kernels/src/mamba_launch.h"
#include "kernels/src/registrations.h"

namespace mmlab::kernels {

namespace {

using ops::SelectiveScanArgs;
using ops::SelectiveScanResult;

torch::Tensor contiguous_or_undefined(const torch::Tensor& t) {
  return t.defined() ? t.contiguous() : t;
}

// An autograd Function cannot take undefined tensors (LibTorch records each input's device), so
// the optional D, z and delta_bias travel through it as empty tensors when absent.
torch::Tensor empty_if_absent(const torch::Tensor& t, const torch::Tensor& like) {
  return t.defined() ? t : torch::empty({0}, like.options().dtype(torch::kFloat));
}

torch::Tensor absent_if_empty(const torch::Tensor& t) {
  return t.numel() == 0 ? torch::Tensor() : t;
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                torch::Tensor u, torch::Tensor delta,
                                                torch::Tensor A, torch::Tensor B, torch::Tensor C,
                                                torch::Tensor D_or_empty, torch::Tensor z_or_empty,
                                                torch::Tensor delta_bias_or_empty,
                                                bool delta_softplus, bool return_last_state) {
    ScanForward out = run_selective_scan_forward(
        u, delta, A, B, C, absent_if_empty(D_or_empty), absent_if_empty(z_or_empty),
        absent_if_empty(delta_bias_or_empty), delta_softplus, return_last_state,
        /*keep_carries=*/true);
    ctx->save_for_backward(
        {u, delta, A, B, C, D_or_empty, z_or_empty, delta_bias_or_empty, out.carries});
    ctx->saved_data["delta_softplus"] = delta_softplus;
    if (!return_last_state) return {out.y};
    return {out.y, out.last_state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &u = saved[0], &delta = saved[1], &A = saved[2], &B = saved[3],
                        &C = saved[4], &carries = saved[8];
    const torch::Tensor D = absent_if_empty(saved[5]), z = absent_if_empty(saved[6]),
                        delta_bias = absent_if_empty(saved[7]);
    // grads[0] is undefined when only last_state feeds the loss, grads[1] when only y does.
    const torch::Tensor dlast = grads.size() > 1 ? grads[1] : torch::Tensor();
    ScanGrads g = run_selective_scan_backward(u, delta, A, B, C, D, z, delta_bias,
                                              ctx->saved_data["delta_softplus"].toBool(), carries,
                                              grads[0], dlast);
    return {g.du, g.ddelta, g.dA,          g.dB.to(B.scalar_type()), g.dC.to(C.scalar_type()),
            g.dD, g.dz,     g.ddelta_bias, torch::Tensor(),          torch::Tensor()};
  }
};

SelectiveScanResult selective_scan_cuda(const SelectiveScanArgs& a) {
  // The kernels read B and C (B, N, L) and the small fp32 tensors as contiguous rows.
  const torch::Tensor B = a.B.contiguous(), C = a.C.contiguous(), A = a.A.contiguous();
  const torch::Tensor D = contiguous_or_undefined(a.D);
  const torch::Tensor delta_bias = contiguous_or_undefined(a.delta_bias);
  SelectiveScanResult result;
  if (!a.needs_grad) {
    ScanForward out = run_selective_scan_forward(a.u, a.delta, A, B, C, D, a.z, delta_bias,
                                                 a.delta_softplus, a.return_last_state,
                                                 /*keep_carries=*/false);
    result.y = out.y;
    result.last_state = out.last_state;
    return result;
  }
  auto outs = SelectiveScanFunction::apply(
      a.u, a.delta, A, B, C, empty_if_absent(D, a.u), empty_if_absent(a.z, a.u),
      empty_if_absent(delta_bias, a.u), a.delta_softplus, a.return_last_state);
  result.y = outs[0];
  if (a.return_last_state) result.last_state = outs[1];
  return result;
}

}  // namespace

void register_selective_scan_cuda() {
  ops::selective_scan_registry().add(
      {"cuda", torch::kCUDA, selective_scan_why_not, selective_scan_cuda});
}

}  // namespace mmlab::kernels
