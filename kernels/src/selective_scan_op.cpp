// SPDX-License-Identifier: GPL-3.0-or-later
// Glue of the fused selective scan: the "cuda" implementation of ops::selective_scan_registry().
// Checks what the kernels take (why_not), allocates outputs, and wraps forward and backward in an
// autograd Function that saves only the inputs and the per-chunk carry states. CPU LibTorch
// headers only (the launch goes to compat::current_cuda_stream()).
//
// Shapes: B batch, L length, Di d_inner, N d_state.
#include <c10/core/DeviceGuard.h>
#include <torch/torch.h>

#include <climits>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/registrations.h"
#include "kernels/src/selective_scan.h"

namespace mmlab::kernels {

namespace {

using ops::SelectiveScanArgs;
using ops::SelectiveScanResult;

using Named = std::pair<const char*, const torch::Tensor*>;

bool fp32_or_bf16(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16;
}

ScanDtype scan_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? ScanDtype::kBFloat16 : ScanDtype::kFloat32;
}

/// Why the kernels cannot run `a` ("" if they can); sizes, strides and dtypes only.
std::string why_not_selective_scan(const SelectiveScanArgs& a) {
  if (!a.u.defined() || !a.delta.defined() || !a.A.defined() || !a.B.defined() || !a.C.defined()) {
    return "u, delta, A, B or C missing";
  }
  const torch::Device device = a.u.device();
  if (!device.is_cuda() && !device.is_meta()) {
    return "u on " + c10::DeviceTypeName(device.type(), true);
  }
  for (const auto& [name, t] : std::initializer_list<Named>{{"delta", &a.delta},
                                                            {"A", &a.A},
                                                            {"B", &a.B},
                                                            {"C", &a.C},
                                                            {"D", &a.D},
                                                            {"z", &a.z},
                                                            {"delta_bias", &a.delta_bias}}) {
    if (t->defined() && t->device() != device) return std::string(name) + " not on u's device";
  }
  if (a.u.dim() != 3) return "u not (B, Di, L)";
  const int64_t batch = a.u.size(0), dim = a.u.size(1), len = a.u.size(2);
  if (batch == 0 || dim == 0 || len == 0) return "empty input";
  if (!fp32_or_bf16(a.u)) return std::string("dtype ") + c10::toString(a.u.scalar_type());
  for (const auto& [name, t] : std::initializer_list<Named>{{"delta", &a.delta}, {"z", &a.z}}) {
    if (!t->defined()) continue;
    if (t->sizes() != a.u.sizes()) return std::string(name) + " shape differs from u";
    if (t->scalar_type() != a.u.scalar_type()) return std::string(name) + " dtype differs from u";
  }
  if (a.A.dim() != 2 || a.A.size(0) != dim) return "A not (Di, N)";
  const int64_t dstate = a.A.size(1);
  if (dstate < 1) return "d_state 0";
  if (dstate > kSelectiveScanMaxDstate) return "d_state " + std::to_string(dstate) + " > 64";
  if (a.A.scalar_type() != torch::kFloat) return "A not fp32";
  for (const auto& [name, t] : std::initializer_list<Named>{{"B", &a.B}, {"C", &a.C}}) {
    if (t->dim() != 3 || t->size(0) != batch || t->size(1) != dstate || t->size(2) != len) {
      return std::string(name) + " not (B, N, L)";
    }
    if (!fp32_or_bf16(*t)) return std::string(name) + " dtype " + c10::toString(t->scalar_type());
  }
  if (a.B.scalar_type() != a.C.scalar_type()) return "B and C dtypes differ";
  for (const auto& [name, t] :
       std::initializer_list<Named>{{"D", &a.D}, {"delta_bias", &a.delta_bias}}) {
    if (!t->defined()) continue;
    if (t->dim() != 1 || t->size(0) != dim) return std::string(name) + " not (Di)";
    if (t->scalar_type() != torch::kFloat) return std::string(name) + " not fp32";
  }
  if (len > 1) {
    for (const auto& [name, t] :
         std::initializer_list<Named>{{"u", &a.u}, {"delta", &a.delta}, {"z", &a.z}}) {
      if (t->defined() && t->stride(2) != 1) return std::string(name) + " not contiguous along L";
    }
  }
  if (len > INT_MAX || dim > INT_MAX || batch * ((dim + 31) / 32) > INT_MAX) {
    return "sizes beyond 2^31";
  }
  return "";
}

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

/// The parameters every launch shares: sizes, inputs and their strides.
SelectiveScanParams input_params(const torch::Tensor& u, const torch::Tensor& delta,
                                 const torch::Tensor& A, const torch::Tensor& B,
                                 const torch::Tensor& C, const torch::Tensor& D,
                                 const torch::Tensor& z, const torch::Tensor& delta_bias,
                                 bool delta_softplus) {
  SelectiveScanParams p;
  p.batch = static_cast<int>(u.size(0));
  p.dim = static_cast<int>(u.size(1));
  p.seqlen = static_cast<int>(u.size(2));
  p.dstate = static_cast<int>(A.size(1));
  p.delta_softplus = delta_softplus;
  p.u = u.data_ptr();
  p.u_batch_stride = u.stride(0);
  p.u_dim_stride = u.stride(1);
  p.delta = delta.data_ptr();
  p.delta_batch_stride = delta.stride(0);
  p.delta_dim_stride = delta.stride(1);
  if (z.defined()) {
    p.z = z.data_ptr();
    p.z_batch_stride = z.stride(0);
    p.z_dim_stride = z.stride(1);
  }
  p.Bm = B.data_ptr();
  p.Cm = C.data_ptr();
  p.A = A.data_ptr<float>();
  if (D.defined()) p.D = D.data_ptr<float>();
  if (delta_bias.defined()) p.delta_bias = delta_bias.data_ptr<float>();
  return p;
}

struct ForwardOutputs {
  torch::Tensor y;           // (B, Di, L)           u's dtype
  torch::Tensor last_state;  // (B, Di, N)           fp32, when asked
  torch::Tensor carries;     // (B, n_chunks, N, Di) fp32, when kept for a backward
};

/// Runs the forward kernel; B, C, A, D, delta_bias must be contiguous.
ForwardOutputs run_forward(const torch::Tensor& u, const torch::Tensor& delta,
                           const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                           const torch::Tensor& D, const torch::Tensor& z,
                           const torch::Tensor& delta_bias, bool delta_softplus,
                           bool want_last_state, bool keep_carries) {
  c10::DeviceGuard guard(u.device());
  SelectiveScanParams p = input_params(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  const auto f32 = u.options().dtype(torch::kFloat);
  ForwardOutputs out;
  out.y = torch::empty(u.sizes(), u.options());
  p.y = out.y.data_ptr();
  if (want_last_state) {
    out.last_state = torch::empty({p.batch, p.dim, p.dstate}, f32);
    p.last_state = out.last_state.data_ptr<float>();
  }
  if (keep_carries) {
    const int64_t chunk = selective_scan_chunk_length(p.dstate);
    const int64_t n_chunks = (p.seqlen + chunk - 1) / chunk;
    out.carries = torch::empty({p.batch, n_chunks, p.dstate, p.dim}, f32);
    p.carries = out.carries.data_ptr<float>();
  }
  selective_scan_forward_cuda(p, scan_dtype(u), scan_dtype(B), compat::current_cuda_stream());
  return out;
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                torch::Tensor u, torch::Tensor delta,
                                                torch::Tensor A, torch::Tensor B, torch::Tensor C,
                                                torch::Tensor D_or_empty, torch::Tensor z_or_empty,
                                                torch::Tensor delta_bias_or_empty,
                                                bool delta_softplus, bool return_last_state) {
    ForwardOutputs out =
        run_forward(u, delta, A, B, C, absent_if_empty(D_or_empty), absent_if_empty(z_or_empty),
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
    c10::DeviceGuard guard(u.device());
    // (B, Di, L); undefined when only last_state feeds the loss
    torch::Tensor dout = grads[0].defined() ? grads[0].to(u.scalar_type()) : torch::zeros_like(u);
    if (dout.size(2) > 1 && dout.stride(2) != 1) dout = dout.contiguous();
    // (B, Di, N) fp32: the gradient of last_state, the reverse recurrence's starting value
    torch::Tensor dlast;
    if (grads.size() > 1 && grads[1].defined()) dlast = grads[1].to(torch::kFloat).contiguous();

    SelectiveScanParams p = input_params(u, delta, A, B, C, D, z, delta_bias,
                                         ctx->saved_data["delta_softplus"].toBool());
    const auto f32 = u.options().dtype(torch::kFloat);
    p.carries = carries.data_ptr<float>();
    p.dout = dout.data_ptr();
    p.dout_batch_stride = dout.stride(0);
    p.dout_dim_stride = dout.stride(1);
    if (dlast.defined()) p.dlast_state = dlast.data_ptr<float>();
    torch::Tensor du = torch::empty(u.sizes(), u.options());
    torch::Tensor ddelta = torch::empty(u.sizes(), u.options());
    torch::Tensor dz = z.defined() ? torch::empty(u.sizes(), u.options()) : torch::Tensor();
    torch::Tensor dA = torch::zeros(A.sizes(), f32);
    torch::Tensor dB = torch::zeros(B.sizes(), f32);
    torch::Tensor dC = torch::zeros(C.sizes(), f32);
    torch::Tensor dD = D.defined() ? torch::zeros(D.sizes(), f32) : torch::Tensor();
    torch::Tensor dbias =
        delta_bias.defined() ? torch::zeros(delta_bias.sizes(), f32) : torch::Tensor();
    p.du = du.data_ptr();
    p.ddelta = ddelta.data_ptr();
    if (dz.defined()) p.dz = dz.data_ptr();
    p.dA = dA.data_ptr<float>();
    p.dB = dB.data_ptr<float>();
    p.dC = dC.data_ptr<float>();
    if (dD.defined()) p.dD = dD.data_ptr<float>();
    if (dbias.defined()) p.ddelta_bias = dbias.data_ptr<float>();
    selective_scan_backward_cuda(p, scan_dtype(u), scan_dtype(B), compat::current_cuda_stream());
    return {du, ddelta, dA,    dB.to(B.scalar_type()), dC.to(C.scalar_type()),
            dD, dz,     dbias, torch::Tensor(),        torch::Tensor()};
  }
};

SelectiveScanResult selective_scan_cuda(const SelectiveScanArgs& a) {
  // The kernels read B and C (B, N, L) and the small fp32 tensors as contiguous rows.
  const torch::Tensor B = a.B.contiguous(), C = a.C.contiguous(), A = a.A.contiguous();
  const torch::Tensor D = contiguous_or_undefined(a.D);
  const torch::Tensor delta_bias = contiguous_or_undefined(a.delta_bias);
  SelectiveScanResult result;
  if (!a.needs_grad) {
    ForwardOutputs out = run_forward(a.u, a.delta, A, B, C, D, a.z, delta_bias, a.delta_softplus,
                                     a.return_last_state, /*keep_carries=*/false);
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
      {"cuda", torch::kCUDA, why_not_selective_scan, selective_scan_cuda});
}

}  // namespace mmlab::kernels
