// SPDX-License-Identifier: GPL-3.0-or-later
// Decode step of the selective scan (see selective_state_update.h for the maths and shapes).
//
// A group of `lanes` threads (the power of two >= N, at most a warp) owns one (batch, channel)
// row: each lane updates N / lanes state entries (so a row's state is read and written as one
// coalesced segment), and the group sums its share of y with shuffles.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"
#include "kernels/src/selective_state_update.h"

namespace mmlab::kernels {

namespace {

constexpr int kThreads = 128;
constexpr float kSoftplusThreshold = 20.f;  // torch.nn.functional.softplus's default

__global__ void __launch_bounds__(kThreads)
    state_update_kernel(SelectiveStateUpdateParams p, int lanes) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = thread / lanes;
  const int lane = static_cast<int>(thread % lanes);
  // Threads past the last row stay for the shuffles below.
  const bool valid = row < p.batch * p.channels;
  const int64_t c = valid ? row % p.channels : 0, b = valid ? row / p.channels : 0;
  float acc = 0.f, x = 0.f;
  if (valid) {
    float dt = load_at(p.dt, b, c);
    if (p.dt_bias.data) dt += load_at(p.dt_bias, c);
    if (p.dt_softplus) dt = dt <= kSoftplusThreshold ? log1pf(expf(dt)) : dt;
    x = load_at(p.x, b, c);
    const float dt_x = dt * x;
    float* state = p.state + b * p.state_batch_stride + c * p.state_channel_stride;
    for (int n = lane; n < p.state_size; n += lanes) {
      float s = state[n * p.state_n_stride];
      s = fmaf(s, expf(dt * load_at(p.A, c, n)), dt_x * load_at(p.B, b, n));
      state[n * p.state_n_stride] = s;
      acc = fmaf(s, load_at(p.C, b, n), acc);
    }
  }
  for (int offset = lanes / 2; offset > 0; offset /= 2) {
    acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  }
  if (!valid || lane != 0) return;
  float y = acc;
  if (p.D.data) y = fmaf(load_at(p.D, c), x, y);
  if (p.z.data) y *= silu(load_at(p.z, b, c));
  store_from_float(p.out, p.out_type, row, y);
}

}  // namespace

const char* selective_state_update(const SelectiveStateUpdateParams& p, void* stream) {
  const int64_t rows = p.batch * p.channels;
  if (rows == 0) return nullptr;
  if (p.state_size < 1 || p.state_size > kMaxStateSize) return "state size outside 1..64";
  int lanes = 1;
  while (lanes < p.state_size && lanes < 32) lanes *= 2;
  const int64_t threads_total = rows * lanes;
  const auto blocks = static_cast<unsigned>((threads_total + kThreads - 1) / kThreads);
  state_update_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p, lanes);
  return last_launch_error();
}

}  // namespace mmlab::kernels
