// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernels/src/mamba_launch.h"

#include <c10/core/DeviceGuard.h>

#include <climits>
#include <initializer_list>
#include <utility>

#include "core/ops/torch_compat.h"
#include "kernels/src/causal_conv1d.h"
#include "kernels/src/selective_scan.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using Named = std::pair<const char*, const torch::Tensor*>;

constexpr int64_t kMinConvWidth = 2, kMaxConvWidth = 4;

CausalConv1dParams conv_params(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, bool silu) {
  CausalConv1dParams p;
  p.batch = x.size(0);
  p.channels = x.size(1);
  p.length = x.size(2);
  p.width = static_cast<int>(weight.size(1));
  p.silu = silu;
  p.x_type = element_type(x);
  p.x = x.data_ptr();
  p.x_batch_stride = x.stride(0);
  p.x_channel_stride = x.stride(1);
  p.weight = strided_input(weight);
  p.bias = strided_input(bias);
  return p;
}

/// (B, Di, L) with L stride 1 in `like`'s dtype (autograd may hand in an expanded or differently
/// typed gradient).
torch::Tensor length_contiguous_as(const torch::Tensor& dout, const torch::Tensor& like) {
  auto g = dout.to(like.scalar_type());
  if (g.size(2) > 1 && g.stride(2) != 1) g = g.contiguous();
  return g;
}

/// An uninitialised (B, Di, L) tensor in `like`'s layout when that is dense with L stride 1, else
/// contiguous. The layer's x and z are channel-major views of projections ((Di, B*L) rows): their
/// gradients in that layout flow back through the view with no copy, and y in it is a (Di, B*L)
/// matrix the output projection multiplies as it is.
torch::Tensor empty_in_layout_of(const torch::Tensor& like) {
  auto t = torch::empty_like(like);
  if (t.size(2) > 1 && t.stride(2) != 1) t = torch::empty(like.sizes(), like.options());
  return t;
}

bool fp32_or_bf16(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16;
}

ScanDtype scan_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? ScanDtype::kBFloat16 : ScanDtype::kFloat32;
}

/// The parameters every scan launch shares: sizes, inputs and their strides.
SelectiveScanParams scan_input_params(const torch::Tensor& u, const torch::Tensor& delta,
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

}  // namespace

// --- causal conv1d -------------------------------------------------------------------------------

std::string causal_conv1d_width_why_not(const torch::Tensor& weight) {
  const int64_t K = weight.size(1);
  if (K >= kMinConvWidth && K <= kMaxConvWidth) return "";
  return "conv width " + std::to_string(K) + " outside 2..4";
}

std::string causal_conv1d_why_not(const ops::CausalConv1dArgs& a) {
  const std::initializer_list<CheckedInput> inputs = {
      {"x", a.x, 3}, {"weight", a.weight, 2}, {"bias", a.bias, 1}};
  if (auto why = dims_why_not(inputs); !why.empty()) return why;
  if (auto why = causal_conv1d_width_why_not(a.weight); !why.empty()) return why;
  if (auto why = dtype_device_why_not(inputs); !why.empty()) return why;
  if (a.x.size(2) > 1 && a.x.stride(2) != 1) return "x not contiguous along L";
  return "";
}

void check_causal_conv1d_shapes(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  const int64_t Di = x.size(1), K = weight.size(1);
  check_input("causal_conv1d", "weight", weight, x.device(), {Di, K});
  check_input("causal_conv1d", "bias", bias, x.device(), {Di});
}

torch::Tensor run_causal_conv1d_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                        const torch::Tensor& bias, bool silu) {
  c10::DeviceGuard guard(x.device());
  CausalConv1dParams p = conv_params(x, weight, bias, silu);
  auto out = torch::empty(x.sizes(), x.options());  // (B, Di, L) contiguous
  p.out = out.data_ptr();
  check_launch(causal_conv1d_fwd(p, compat::current_cuda_stream()), "causal_conv1d");
  return out;
}

CausalConv1dGrads run_causal_conv1d_backward(const torch::Tensor& x, const torch::Tensor& weight,
                                             const torch::Tensor& bias, bool silu,
                                             const torch::Tensor& dout_any) {
  c10::DeviceGuard guard(x.device());
  const int64_t B = x.size(0), Di = x.size(1), K = weight.size(1);
  const auto dout = length_contiguous_as(dout_any, x);  // (B, Di, L)
  CausalConv1dParams p = conv_params(x, weight, bias, silu);
  CausalConv1dGrads g;
  g.dx = empty_in_layout_of(x);  // (B, Di, L)
  auto partial = torch::empty({B, Di, K + 1}, x.options().dtype(torch::kFloat));
  p.dout = dout.data_ptr();
  p.dout_batch_stride = dout.stride(0);
  p.dout_channel_stride = dout.stride(1);
  p.dx = g.dx.data_ptr();
  p.dx_batch_stride = g.dx.stride(0);
  p.dx_channel_stride = g.dx.stride(1);
  p.dweight_bias_partial = partial.data_ptr<float>();
  check_launch(causal_conv1d_bwd(p, compat::current_cuda_stream()), "causal_conv1d backward");
  auto sums = partial.sum(0);                                              // (Di, K + 1)
  g.dweight = sums.narrow(1, 0, K).to(weight.scalar_type()).contiguous();  // (Di, K)
  if (bias.defined()) g.dbias = sums.select(1, K).to(bias.scalar_type());  // (Di)
  return g;
}

// --- selective scan ------------------------------------------------------------------------------

std::string selective_scan_why_not(const ops::SelectiveScanArgs& a) {
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

ScanForward run_selective_scan_forward(const torch::Tensor& u, const torch::Tensor& delta,
                                       const torch::Tensor& A, const torch::Tensor& B,
                                       const torch::Tensor& C, const torch::Tensor& D,
                                       const torch::Tensor& z, const torch::Tensor& delta_bias,
                                       bool delta_softplus, bool want_last_state, bool keep_carries,
                                       int tiles_per_chunk) {
  c10::DeviceGuard guard(u.device());
  SelectiveScanParams p = scan_input_params(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  p.tiles_per_chunk = tiles_per_chunk;
  const auto f32 = u.options().dtype(torch::kFloat);
  ScanForward out;
  out.y = z.defined() ? empty_in_layout_of(z) : torch::empty(u.sizes(), u.options());
  p.y = out.y.data_ptr();
  p.y_batch_stride = out.y.stride(0);
  p.y_dim_stride = out.y.stride(1);
  if (want_last_state) {
    out.last_state = torch::empty({p.batch, p.dim, p.dstate}, f32);
    p.last_state = out.last_state.data_ptr<float>();
  }
  if (keep_carries) {
    const int64_t chunk = selective_scan_chunk_length(p.dstate, tiles_per_chunk);
    const int64_t n_chunks = (p.seqlen + chunk - 1) / chunk;
    out.carries = torch::empty({p.batch, n_chunks, p.dstate, p.dim}, f32);
    p.carries = out.carries.data_ptr<float>();
  }
  selective_scan_forward_cuda(p, scan_dtype(u), scan_dtype(B), compat::current_cuda_stream());
  return out;
}

ScanGrads run_selective_scan_backward(const torch::Tensor& u, const torch::Tensor& delta,
                                      const torch::Tensor& A, const torch::Tensor& B,
                                      const torch::Tensor& C, const torch::Tensor& D,
                                      const torch::Tensor& z, const torch::Tensor& delta_bias,
                                      bool delta_softplus, const torch::Tensor& carries,
                                      const torch::Tensor& dout_any, const torch::Tensor& dlast_any,
                                      int tiles_per_chunk) {
  c10::DeviceGuard guard(u.device());
  // (B, Di, L); undefined when only last_state feeds the loss
  const torch::Tensor dout =
      dout_any.defined() ? length_contiguous_as(dout_any, u) : torch::zeros_like(u);
  // (B, Di, N) fp32: the gradient of last_state, the reverse recurrence's starting value
  torch::Tensor dlast;
  if (dlast_any.defined()) dlast = dlast_any.to(torch::kFloat).contiguous();

  SelectiveScanParams p = scan_input_params(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  p.tiles_per_chunk = tiles_per_chunk;
  const auto f32 = u.options().dtype(torch::kFloat);
  p.carries = carries.data_ptr<float>();
  p.dout = dout.data_ptr();
  p.dout_batch_stride = dout.stride(0);
  p.dout_dim_stride = dout.stride(1);
  if (dlast.defined()) p.dlast_state = dlast.data_ptr<float>();
  ScanGrads g;
  g.du = torch::empty(u.sizes(), u.options());
  g.ddelta = torch::empty(u.sizes(), u.options());
  if (z.defined()) g.dz = empty_in_layout_of(z);
  g.dA = torch::zeros(A.sizes(), f32);
  g.dB = torch::zeros(B.sizes(), f32);
  g.dC = torch::zeros(C.sizes(), f32);
  if (D.defined()) g.dD = torch::zeros(D.sizes(), f32);
  if (delta_bias.defined()) g.ddelta_bias = torch::zeros(delta_bias.sizes(), f32);
  p.du = g.du.data_ptr();
  p.ddelta = g.ddelta.data_ptr();
  if (g.dz.defined()) {
    p.dz = g.dz.data_ptr();
    p.dz_batch_stride = g.dz.stride(0);
    p.dz_dim_stride = g.dz.stride(1);
  }
  p.dA = g.dA.data_ptr<float>();
  p.dB = g.dB.data_ptr<float>();
  p.dC = g.dC.data_ptr<float>();
  if (g.dD.defined()) p.dD = g.dD.data_ptr<float>();
  if (g.ddelta_bias.defined()) p.ddelta_bias = g.ddelta_bias.data_ptr<float>();
  selective_scan_backward_cuda(p, scan_dtype(u), scan_dtype(B), compat::current_cuda_stream());
  return g;
}

}  // namespace mmlab::kernels
