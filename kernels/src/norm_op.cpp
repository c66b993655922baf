// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementation of ops::norm: the kernels of kernels/src/norm.h in an autograd
// Function. The forward keeps x (the residual stream, which the graph holds anyway) and two
// floats per row; dweight and dbias are the sums of the backward's per-warp partial rows.
//
// Shapes: N rows, D columns, P partial rows.
#include <torch/torch.h>

#include <string>

#include "core/ops/norm_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/norm.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

std::string norm_why_not(const ops::NormArgs& a) {
  const std::initializer_list<CheckedInput> inputs = {
      {"x", a.x, 2}, {"weight", a.weight, 1}, {"bias", a.bias, 1}};
  if (auto why = dims_why_not(inputs); !why.empty()) return why;
  if (auto why = dtype_device_why_not(inputs); !why.empty()) return why;
  if (a.out_dtype != torch::kFloat && a.out_dtype != torch::kBFloat16) {
    return std::string("out dtype ") + c10::toString(a.out_dtype);
  }
  const int64_t D = a.x.size(1);
  if (D > kNormMaxCols) {
    return "width " + std::to_string(D) + " > " + std::to_string(kNormMaxCols);
  }
  if (D == 0) return "empty rows";
  if (a.weight.size(0) != D || (a.bias.defined() && a.bias.size(0) != D)) {
    return "weight or bias differ from x in width";
  }
  if (!a.rms && !a.bias.defined()) return "LayerNorm without a bias";
  return "";
}

struct Normed {
  torch::Tensor y;     // (N, D) out dtype
  torch::Tensor mean;  // (N) fp32
  torch::Tensor rstd;  // (N) fp32
};

Normed run_forward(const torch::Tensor& x_in, const torch::Tensor& weight,
                   const torch::Tensor& bias, double eps, bool rms, torch::ScalarType out_dtype) {
  c10::DeviceGuard guard(x_in.device());
  const auto x = x_in.contiguous();  // (N, D)
  const auto w = weight.to(torch::kFloat).contiguous();
  const auto b = bias.defined() ? bias.to(torch::kFloat).contiguous() : torch::Tensor();
  const int64_t N = x.size(0), D = x.size(1);
  const auto stats = x.options().dtype(torch::kFloat);
  Normed out{torch::empty({N, D}, x.options().dtype(out_dtype)), torch::empty({N}, stats),
             torch::empty({N}, stats)};
  NormParams p;
  p.x = x.data_ptr();
  p.x_type = element_type(x);
  p.weight = w.data_ptr<float>();
  p.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  p.y = out.y.data_ptr();
  p.y_type = element_type(out.y);
  p.mean = out.mean.data_ptr<float>();
  p.rstd = out.rstd.data_ptr<float>();
  p.rows = N;
  p.cols = D;
  p.eps = static_cast<float>(eps);
  p.rms = rms;
  check_launch(norm_forward(p, compat::current_cuda_stream()), "norm");
  return out;
}

class NormFunction : public torch::autograd::Function<NormFunction> {
 public:
  /// `bias` is always a tensor (LibTorch 2.x's Function::apply takes no undefined inputs):
  /// without one (RMSNorm), an empty placeholder and has_bias false.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               bool has_bias, double eps, bool rms, torch::ScalarType out_dtype) {
    Normed r = run_forward(x, weight, has_bias ? bias : torch::Tensor(), eps, rms, out_dtype);
    ctx->save_for_backward({x, weight, r.mean, r.rstd});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["rms"] = rms;
    ctx->saved_data["bias_dtype"] = bias.scalar_type();
    return r.y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x_in = saved[0];
    const torch::Tensor& weight = saved[1];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const tensor_list none = {torch::Tensor(), torch::Tensor(), torch::Tensor(), {}, {}, {}, {}};
    if (!grads[0].defined()) return none;
    c10::DeviceGuard guard(x_in.device());
    const auto x = x_in.contiguous();       // (N, D)
    const auto dy = grads[0].contiguous();  // (N, D)
    const auto w = weight.to(torch::kFloat).contiguous();
    const int64_t N = x.size(0), D = x.size(1), P = norm_backward_partial_rows(N);
    const auto f32 = x.options().dtype(torch::kFloat);
    auto dx = torch::empty_like(x);                                            // (N, D)
    auto dw_partial = torch::empty({P, D}, f32);                               // (P, D)
    auto db_partial = has_bias ? torch::empty({P, D}, f32) : torch::Tensor();  // (P, D)
    NormBackwardParams p;
    p.x = x.data_ptr();
    p.x_type = element_type(x);
    p.dy = dy.data_ptr();
    p.dy_type = element_type(dy);
    p.weight = w.data_ptr<float>();
    p.mean = saved[2].data_ptr<float>();
    p.rstd = saved[3].data_ptr<float>();
    p.dx = dx.data_ptr();
    p.dweight_partial = dw_partial.data_ptr<float>();
    p.dbias_partial = has_bias ? db_partial.data_ptr<float>() : nullptr;
    p.rows = N;
    p.cols = D;
    p.rms = ctx->saved_data["rms"].toBool();
    check_launch(norm_backward(p, compat::current_cuda_stream()), "norm");
    auto dw = dw_partial.sum(0).to(weight.scalar_type());  // (D)
    torch::Tensor db;
    if (has_bias) db = db_partial.sum(0).to(ctx->saved_data["bias_dtype"].toScalarType());
    return {dx, dw, db, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor norm_cuda(const ops::NormArgs& a) {
  if (!a.needs_grad) return run_forward(a.x, a.weight, a.bias, a.eps, a.rms, a.out_dtype).y;
  const bool has_bias = a.bias.defined();
  return NormFunction::apply(a.x, a.weight,
                             has_bias ? a.bias : torch::empty({0}, a.weight.options()), has_bias,
                             a.eps, a.rms, a.out_dtype);
}

}  // namespace

void register_norm_cuda() {
  ops::norm_registry().add({"cuda", torch::kCUDA, norm_why_not, norm_cuda});
}

}  // namespace mmlab::kernels
