// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementations of ops::causal_conv1d (the kernels of kernels/src/mamba_launch.h in
// an autograd Function) and ops::causal_conv1d_update: argument checks, outputs, launches on
// LibTorch's current stream.
//
// Shapes: B batch, Di channels, L length, K width.
#include <torch/torch.h>

#include <string>

#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/causal_conv1d.h"
#include "kernels/src/mamba_launch.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
 public:
  /// `bias` is always a tensor (LibTorch 2.x's Function::apply takes no undefined inputs):
  /// without one, an empty placeholder and has_bias false.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               bool has_bias, bool silu) {
    // The pre-activation is not saved: the backward recomputes it from x (K multiply-adds).
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["silu"] = silu;
    return run_causal_conv1d_forward(x, weight, has_bias ? bias : torch::Tensor(), silu);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const torch::Tensor bias = has_bias ? saved[2] : torch::Tensor();
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor(), {}, {}};
    CausalConv1dGrads g =
        run_causal_conv1d_backward(x, weight, bias, ctx->saved_data["silu"].toBool(), grads[0]);
    return {g.dx, g.dweight, g.dbias, torch::Tensor(), torch::Tensor()};
  }
};

std::string update_why_not(const ops::CausalConv1dUpdateArgs& a) {
  if (a.needs_grad) return "no backward (needs_grad)";
  const std::initializer_list<CheckedInput> inputs = {
      {"conv_state", a.conv_state, 3}, {"x", a.x, 2}, {"weight", a.weight, 2}, {"bias", a.bias, 1}};
  if (auto why = dims_why_not(inputs); !why.empty()) return why;
  if (auto why = causal_conv1d_width_why_not(a.weight); !why.empty()) return why;
  return dtype_device_why_not(inputs);
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
      {"cuda", torch::kCUDA, causal_conv1d_why_not, [](const ops::CausalConv1dArgs& a) {
         check_causal_conv1d_shapes(a.x, a.weight, a.bias);
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
