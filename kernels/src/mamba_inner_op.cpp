// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementation of ops::mamba_inner: the conv kernel, the x_proj and dt_proj products
// (cuBLAS) and the scan kernel in one autograd Function whose forward keeps only x, z, the
// weights, x_dbl (R+2N rows) and the scan's per-chunk carries. Its backward recomputes the conv
// output u (one conv kernel) and delta (one product) instead of keeping those two (B, Di, L)
// tensors per layer from the forward (mamba_ssm's checkpoint level 1), then runs the scan's
// backward, the products' gradients and the conv's backward. CPU LibTorch headers only.
//
// Shapes: B batch, L length, Di d_inner, N d_state, K conv width, R dt_rank.
#include "kernels/src/mamba_inner_op.h"

#include <torch/torch.h>

#include <string>
#include <utility>

#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/mamba_launch.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

InnerScanInputs inner_scan_inputs(const torch::Tensor& dt_proj_weight, const torch::Tensor& x_dbl,
                                  int64_t N) {
  const int64_t R = dt_proj_weight.size(1);
  InnerScanInputs in;
  in.delta = ops::left_multiply(dt_proj_weight, x_dbl.narrow(1, 0, R));  // (B, Di, L)
  in.B = x_dbl.narrow(1, R, N).contiguous();                             // (B, N, L)
  in.C = x_dbl.narrow(1, R + N, N).contiguous();                         // (B, N, L)
  return in;
}

InnerProductGrads inner_products_backward(const torch::Tensor& x_proj_weight,
                                          const torch::Tensor& dt_proj_weight,
                                          const torch::Tensor& u, const torch::Tensor& x_dbl,
                                          const torch::Tensor& ddelta, const torch::Tensor& dB,
                                          const torch::Tensor& dC, torch::Tensor du_scan) {
  const int64_t batch = u.size(0), Di = u.size(1), R = dt_proj_weight.size(1);
  const int64_t rows = x_proj_weight.size(0);  // R+2N
  const auto dtype = x_dbl.scalar_type();
  const auto sum_dtype = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor dt_in = x_dbl.narrow(1, 0, R);  // (B, R, L)
  const torch::Tensor dd = ddelta.to(dtype);          // (B, Di, L)
  InnerProductGrads g;
  // delta = W_dt dt_in per batch: dW_dt = sum_b dd_b dt_in_b^T, d dt_in = W_dt^T dd.
  g.dt_proj_weight =
      torch::bmm(dd, dt_in.transpose(1, 2)).sum(torch::IntArrayRef{0}, false, sum_dtype);
  auto dx_dbl = torch::cat(
      {ops::left_multiply(dt_proj_weight.t().contiguous(), dd), dB.to(dtype), dC.to(dtype)},
      1);  // (B, R+2N, L)
  // x_dbl = W_x u per batch: dW_x = sum_b dx_dbl_b u_b^T, du += W_x^T dx_dbl.
  g.dx_proj_weight =
      torch::bmm(dx_dbl, u.transpose(1, 2)).sum(torch::IntArrayRef{0}, false, sum_dtype);
  auto w_t = x_proj_weight.to(u.scalar_type()).t().contiguous();  // (Di, R+2N)
  du_scan.baddbmm_(w_t.unsqueeze(0).expand({batch, Di, rows}), dx_dbl.to(u.scalar_type()));
  g.du = std::move(du_scan);
  return g;
}

namespace {

using ops::MambaInnerArgs;
using Named = std::pair<const char*, const torch::Tensor*>;

std::string mamba_inner_why_not(const MambaInnerArgs& a) {
  const Named inputs[] = {{"x", &a.x},
                          {"z", &a.z},
                          {"conv_weight", &a.conv_weight},
                          {"conv_bias", &a.conv_bias},
                          {"x_proj_weight", &a.x_proj_weight},
                          {"dt_proj_weight", &a.dt_proj_weight},
                          {"dt_proj_bias", &a.dt_proj_bias},
                          {"A", &a.A},
                          {"D", &a.D}};
  for (const auto& [name, t] : inputs) {
    if (!t->defined()) return std::string(name) + " missing";
  }
  const torch::Device device = a.x.device();
  if (!device.is_cuda() && !device.is_meta()) {
    return "x on " + c10::DeviceTypeName(device.type(), true);
  }
  for (const auto& [name, t] : inputs) {
    if (t->device() != device) return std::string(name) + " not on x's device";
  }
  for (const auto& why : {dim_why_not("x", a.x, 3), dim_why_not("z", a.z, 3),
                          dim_why_not("x_proj_weight", a.x_proj_weight, 2),
                          dim_why_not("dt_proj_weight", a.dt_proj_weight, 2),
                          dim_why_not("A", a.A, 2), dtype_why_not("x_proj_weight", a.x_proj_weight),
                          dtype_why_not("dt_proj_weight", a.dt_proj_weight)}) {
    if (!why.empty()) return why;
  }
  if (a.z.sizes() != a.x.sizes()) return "z shape differs from x";
  if (a.z.scalar_type() != a.x.scalar_type()) return "z dtype differs from x";
  // The scan takes u (x's dtype) and delta (the products' dtype) in one dtype.
  if (a.compute_dtype != a.x.scalar_type()) {
    return std::string("x dtype ") + c10::toString(a.x.scalar_type()) + " under " +
           c10::toString(a.compute_dtype) + " autocast";
  }
  const int64_t batch = a.x.size(0), Di = a.x.size(1), L = a.x.size(2);
  const int64_t R = a.dt_proj_weight.size(1), N = a.A.size(1);
  if (a.dt_proj_weight.size(0) != Di) return "dt_proj_weight not (Di, R)";
  if (a.conv_weight.dim() != 2 || a.conv_weight.size(0) != Di) return "conv_weight not (Di, K)";
  if (a.conv_bias.dim() != 1 || a.conv_bias.size(0) != Di) return "conv_bias not (Di)";
  if (a.x_proj_weight.size(0) != R + 2 * N || a.x_proj_weight.size(1) != Di) {
    return "x_proj_weight not (R+2N, Di)";
  }
  ops::CausalConv1dArgs conv;
  conv.x = a.x;
  conv.weight = a.conv_weight;
  conv.bias = a.conv_bias;
  conv.silu = true;
  if (auto why = causal_conv1d_why_not(conv); !why.empty()) return why;
  // The scan's call as the forward makes it; meta tensors, since only sizes, strides and dtypes
  // count.
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  auto like = [&](const torch::Tensor& t) {
    return torch::empty_strided(t.sizes(), t.strides(), meta.dtype(t.scalar_type()));
  };
  const auto act = meta.dtype(a.x.scalar_type());
  ops::SelectiveScanArgs scan;
  scan.u = torch::empty({batch, Di, L}, act);
  scan.delta = torch::empty({batch, Di, L}, act);
  scan.A = like(a.A);
  scan.B = torch::empty({batch, N, L}, act);
  scan.C = torch::empty({batch, N, L}, act);
  scan.D = like(a.D);
  scan.z = like(a.z);
  scan.delta_bias = like(a.dt_proj_bias);
  scan.delta_softplus = true;
  return selective_scan_why_not(scan);
}

struct InnerForward {
  torch::Tensor y;        // (B, Di, L)           x's dtype
  torch::Tensor x_dbl;    // (B, R+2N, L)         x's dtype
  torch::Tensor carries;  // (B, n_chunks, N, Di) fp32, when kept for a backward
};

/// The forward; A, D and dt_proj_bias contiguous. Products in x's dtype, which why_not made the
/// dtype autocast would give them, so the result is the reference's under autocast too.
InnerForward inner_forward(const torch::Tensor& x, const torch::Tensor& z,
                           const torch::Tensor& conv_weight, const torch::Tensor& conv_bias,
                           const torch::Tensor& x_proj_weight, const torch::Tensor& dt_proj_weight,
                           const torch::Tensor& dt_proj_bias, const torch::Tensor& A,
                           const torch::Tensor& D, bool keep_carries) {
  compat::NoAutocast explicit_dtypes;
  InnerForward out;
  ScanForward scan;
  {
    auto u = run_causal_conv1d_forward(x, conv_weight, conv_bias, /*silu=*/true);  // (B, Di, L)
    out.x_dbl = ops::left_multiply(x_proj_weight, u);                              // (B, R+2N, L)
    InnerScanInputs in = inner_scan_inputs(dt_proj_weight, out.x_dbl, A.size(1));
    scan = run_selective_scan_forward(u, in.delta, A, in.B, in.C, D, z, dt_proj_bias,
                                      /*delta_softplus=*/true, /*want_last_state=*/false,
                                      keep_carries);
  }  // u and delta end here: the backward recomputes them
  out.y = scan.y;
  out.carries = scan.carries;
  return out;
}

class MambaInnerFunction : public torch::autograd::Function<MambaInnerFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& z, const torch::Tensor& conv_weight,
                               const torch::Tensor& conv_bias, const torch::Tensor& x_proj_weight,
                               const torch::Tensor& dt_proj_weight,
                               const torch::Tensor& dt_proj_bias, const torch::Tensor& A,
                               const torch::Tensor& D) {
    InnerForward f = inner_forward(x, z, conv_weight, conv_bias, x_proj_weight, dt_proj_weight,
                                   dt_proj_bias, A, D, /*keep_carries=*/true);
    ctx->save_for_backward({x, z, conv_weight, conv_bias, x_proj_weight, dt_proj_weight,
                            dt_proj_bias, A, D, f.x_dbl, f.carries});
    return f.y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &z = saved[1], &conv_weight = saved[2],
                        &conv_bias = saved[3], &x_proj_weight = saved[4],
                        &dt_proj_weight = saved[5], &dt_proj_bias = saved[6], &A = saved[7],
                        &D = saved[8], &x_dbl = saved[9], &carries = saved[10];
    if (!grads[0].defined()) return torch::autograd::variable_list(9);
    compat::NoAutocast explicit_dtypes;
    // Recomputed, not kept: one conv kernel and one product.
    auto u = run_causal_conv1d_forward(x, conv_weight, conv_bias, /*silu=*/true);  // (B, Di, L)
    ScanGrads scan;
    {
      InnerScanInputs in = inner_scan_inputs(dt_proj_weight, x_dbl, A.size(1));
      scan =
          run_selective_scan_backward(u, in.delta, A, in.B, in.C, D, z, dt_proj_bias,
                                      /*delta_softplus=*/true, carries, grads[0], torch::Tensor());
    }  // delta freed before the products' gradients
    InnerProductGrads products = inner_products_backward(
        x_proj_weight, dt_proj_weight, u, x_dbl, scan.ddelta, scan.dB, scan.dC, std::move(scan.du));
    u.reset();
    scan.ddelta.reset();
    CausalConv1dGrads conv =
        run_causal_conv1d_backward(x, conv_weight, conv_bias, /*silu=*/true, products.du);
    return {conv.dx,
            scan.dz,
            conv.dweight,
            conv.dbias,
            products.dx_proj_weight.to(x_proj_weight.scalar_type()),
            products.dt_proj_weight.to(dt_proj_weight.scalar_type()),
            scan.ddelta_bias.to(dt_proj_bias.scalar_type()),
            scan.dA.to(A.scalar_type()),
            scan.dD.to(D.scalar_type())};
  }
};

torch::Tensor mamba_inner_cuda(const MambaInnerArgs& a) {
  // The scan kernels read the small fp32 tensors as contiguous rows.
  const torch::Tensor A = a.A.contiguous(), D = a.D.contiguous();
  const torch::Tensor dt_proj_bias = a.dt_proj_bias.contiguous();
  if (!a.needs_grad) {
    return inner_forward(a.x, a.z, a.conv_weight, a.conv_bias, a.x_proj_weight, a.dt_proj_weight,
                         dt_proj_bias, A, D, /*keep_carries=*/false)
        .y;
  }
  return MambaInnerFunction::apply(a.x, a.z, a.conv_weight, a.conv_bias, a.x_proj_weight,
                                   a.dt_proj_weight, dt_proj_bias, A, D);
}

}  // namespace

void register_mamba_inner_cuda() {
  ops::mamba_inner_registry().add({"cuda", torch::kCUDA, mamba_inner_why_not, mamba_inner_cuda});
}

}  // namespace mmlab::kernels
