// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementations of ops::causal_conv1d (forward + backward through an autograd
// Function) and ops::causal_conv1d_update: argument checks, outputs, launches on LibTorch's
// current stream.
//
// Shapes: B batch, Di channels, L length, K width.
#include <torch/torch.h>

#include <string>

#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/causal_conv1d.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kMinWidth = 2, kMaxWidth = 4;

std::string width_why_not(const torch::Tensor& weight) {
  const int64_t K = weight.size(1);
  if (K >= kMinWidth && K <= kMaxWidth) return "";
  return "conv width " + std::to_string(K) + " outside 2..4";
}

std::string conv_why_not(const ops::CausalConv1dArgs& a) {
  for (const auto& why : {dim_why_not("x", a.x, 3), dim_why_not("weight", a.weight, 2),
                          dim_why_not("bias", a.bias, 1)}) {
    if (!why.empty()) return why;
  }
  if (auto why = width_why_not(a.weight); !why.empty()) return why;
  const std::pair<const char*, const torch::Tensor*> inputs[] = {
      {"x", &a.x}, {"weight", &a.weight}, {"bias", &a.bias}};
  for (const auto& [name, t] : inputs) {
    if (auto why = dtype_why_not(name, *t); !why.empty()) return why;
    if (auto why = device_why_not(name, *t); !why.empty()) return why;
  }
  if (a.x.size(2) > 1 && a.x.stride(2) != 1) return "x not contiguous along L";
  return "";
}

void check_conv_shapes(const torch::Tensor& x, const torch::Tensor& weight,
                       const torch::Tensor& bias) {
  const int64_t Di = x.size(1), K = weight.size(1);
  check_input("causal_conv1d", "weight", weight, x.device(), {Di, K});
  check_input("causal_conv1d", "bias", bias, x.device(), {Di});
}

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

/// dout with L stride 1 in x's dtype (autograd may hand in an expanded or differently typed one).
torch::Tensor prepare_dout(const torch::Tensor& dout, const torch::Tensor& x) {
  auto g = dout.to(x.scalar_type());
  if (g.size(2) > 1 && g.stride(2) != 1) g = g.contiguous();
  return g;
}

class CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
 public:
  /// `bias` is always a tensor (LibTorch 2.x's Function::apply takes no undefined inputs):
  /// without one, an empty placeholder and has_bias false.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               bool has_bias, bool silu) {
    c10::DeviceGuard guard(x.device());
    // The pre-activation is not saved: the backward recomputes it from x (K multiply-adds).
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["silu"] = silu;
    CausalConv1dParams p = conv_params(x, weight, has_bias ? bias : torch::Tensor(), silu);
    auto out = torch::empty(x.sizes(), x.options());  // (B, Di, L) contiguous
    p.out = out.data_ptr();
    check_launch(causal_conv1d_fwd(p, compat::current_cuda_stream()), "causal_conv1d");
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const torch::Tensor bias = has_bias ? saved[2] : torch::Tensor();
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor(), {}, {}};
    c10::DeviceGuard guard(x.device());
    const int64_t B = x.size(0), Di = x.size(1), L = x.size(2), K = weight.size(1);
    const auto dout = prepare_dout(grads[0], x);  // (B, Di, L)
    CausalConv1dParams p = conv_params(x, weight, bias, ctx->saved_data["silu"].toBool());
    auto dx = torch::empty(x.sizes(), x.options());  // (B, Di, L)
    const int64_t tiles = causal_conv1d_bwd_tiles(L);
    auto partial = torch::empty({B * tiles, Di, K + 1}, x.options().dtype(torch::kFloat));
    p.dout = dout.data_ptr();
    p.dout_batch_stride = dout.stride(0);
    p.dout_channel_stride = dout.stride(1);
    p.dx = dx.data_ptr();
    p.dweight_bias_partial = partial.data_ptr<float>();
    check_launch(causal_conv1d_bwd(p, compat::current_cuda_stream()), "causal_conv1d backward");
    auto sums = partial.sum(0);                                                 // (Di, K + 1)
    auto dweight = sums.narrow(1, 0, K).to(weight.scalar_type()).contiguous();  // (Di, K)
    torch::Tensor dbias;
    if (bias.defined()) dbias = sums.select(1, K).to(bias.scalar_type());  // (Di)
    return {dx, dweight, dbias, torch::Tensor(), torch::Tensor()};
  }
};

std::string update_why_not(const ops::CausalConv1dUpdateArgs& a) {
  if (a.needs_grad) return "no backward (needs_grad)";
  for (const auto& why : {dim_why_not("conv_state", a.conv_state, 3), dim_why_not("x", a.x, 2),
                          dim_why_not("weight", a.weight, 2), dim_why_not("bias", a.bias, 1)}) {
    if (!why.empty()) return why;
  }
  if (auto why = width_why_not(a.weight); !why.empty()) return why;
  const std::pair<const char*, const torch::Tensor*> inputs[] = {
      {"conv_state", &a.conv_state}, {"x", &a.x}, {"weight", &a.weight}, {"bias", &a.bias}};
  for (const auto& [name, t] : inputs) {
    if (auto why = dtype_why_not(name, *t); !why.empty()) return why;
    if (auto why = device_why_not(name, *t); !why.empty()) return why;
  }
  return "";
}

torch::Tensor conv_update(const ops::CausalConv1dUpdateArgs& a) {
  const torch::Tensor& state = a.conv_state;
  const int64_t B = state.size(0), Di = state.size(1), K = state.size(2);
  const auto device = state.device();
  check_input("causal_conv1d_update", "x", a.x, device, {B, Di});
  check_input("causal_conv1d_update", "weight", a.weight, device, {Di, K});
  check_input("causal_conv1d_update", "bias", a.bias, device, {Di});
  c10::DeviceGuard guard(device);
  auto out = torch::empty({B, Di}, a.x.options());  // (B, Di)
  CausalConv1dUpdateParams p;
  p.batch = B;
  p.channels = Di;
  p.width = static_cast<int>(K);
  p.silu = a.silu;
  p.state = state.data_ptr();
  p.state_type = element_type(state);
  p.state_batch_stride = state.stride(0);
  p.state_channel_stride = state.stride(1);
  p.state_width_stride = state.stride(2);
  p.x = strided_input(a.x);
  p.weight = strided_input(a.weight);
  p.bias = strided_input(a.bias);
  p.out = out.data_ptr();
  p.out_type = element_type(out);
  check_launch(causal_conv1d_update(p, compat::current_cuda_stream()), "causal_conv1d_update");
  return out;
}

}  // namespace

void register_causal_conv1d_cuda() {
  ops::causal_conv1d_registry().add(
      {"cuda", torch::kCUDA, conv_why_not, [](const ops::CausalConv1dArgs& a) {
         check_conv_shapes(a.x, a.weight, a.bias);
         const bool has_bias = a.bias.defined();
         return CausalConv1dFunction::apply(
             a.x, a.weight, has_bias ? a.bias : torch::empty({0}, a.weight.options()), has_bias,
             a.silu);
       }});
}

void register_causal_conv1d_update_cuda() {
  ops::causal_conv1d_update_registry().add({"cuda", torch::kCUDA, update_why_not, conv_update});
}

}  // namespace mmlab::kernels
