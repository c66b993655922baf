// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementation of ops::selective_state_update (one decode step, no backward):
// argument checks, the output, a launch on LibTorch's current stream.
//
// Shapes: B batch, Di channels (d_inner), N state size.
#include <torch/torch.h>

#include <string>

#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/registrations.h"
#include "kernels/src/selective_state_update.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

std::string state_update_why_not(const ops::SelectiveStateUpdateArgs& a) {
  if (a.needs_grad) return "no backward (needs_grad)";
  const std::initializer_list<CheckedInput> inputs = {
      {"state", a.state, 3}, {"x", a.x, 2}, {"dt", a.dt, 2},
      {"A", a.A, 2},         {"B", a.B, 2}, {"C", a.C, 2},
      {"D", a.D, 1},         {"z", a.z, 2}, {"dt_bias", a.dt_bias, 1}};
  if (auto why = dims_why_not(inputs); !why.empty()) return why;
  const int64_t N = a.state.size(2);
  if (N > kMaxStateSize) return "d_state " + std::to_string(N) + " > 64";
  if (a.state.scalar_type() != torch::kFloat) {
    return std::string("state dtype ") + c10::toString(a.state.scalar_type()) + ", not Float";
  }
  return dtype_device_why_not(inputs);
}

torch::Tensor state_update(const ops::SelectiveStateUpdateArgs& a) {
  const torch::Tensor& state = a.state;  // (B, Di, N)
  const int64_t B = state.size(0), Di = state.size(1), N = state.size(2);
  const auto device = state.device();
  const char* op = "selective_state_update";
  check_input(op, "x", a.x, device, {B, Di});
  check_input(op, "dt", a.dt, device, {B, Di});
  check_input(op, "A", a.A, device, {Di, N});
  check_input(op, "B", a.B, device, {B, N});
  check_input(op, "C", a.C, device, {B, N});
  check_input(op, "D", a.D, device, {Di});
  check_input(op, "z", a.z, device, {B, Di});
  check_input(op, "dt_bias", a.dt_bias, device, {Di});
  c10::DeviceGuard guard(device);
  auto y = torch::empty({B, Di}, a.x.options());  // (B, Di)
  SelectiveStateUpdateParams p;
  p.batch = B;
  p.channels = Di;
  p.state_size = static_cast<int>(N);
  p.dt_softplus = a.dt_softplus;
  p.state = state.data_ptr<float>();
  p.state_batch_stride = state.stride(0);
  p.state_channel_stride = state.stride(1);
  p.state_n_stride = state.stride(2);
  p.x = strided_input(a.x);
  p.dt = strided_input(a.dt);
  p.A = strided_input(a.A);
  p.B = strided_input(a.B);
  p.C = strided_input(a.C);
  p.D = strided_input(a.D);
  p.z = strided_input(a.z);
  p.dt_bias = strided_input(a.dt_bias);
  p.out = y.data_ptr();
  p.out_type = element_type(y);
  check_launch(selective_state_update(p, compat::current_cuda_stream()), op);
  return y;
}

}  // namespace

void register_selective_state_update_cuda() {
  ops::selective_state_update_registry().add(
      {"cuda", torch::kCUDA, state_update_why_not, state_update});
}

}  // namespace mmlab::kernels
