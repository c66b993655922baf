// SPDX-License-Identifier: GPL-3.0-or-later
// Validate-and-bench for the selective-state decode step (kernels/src/selective_state_update.cu):
// on random inputs at a decode shape, one step is checked against the reference twin (y and the
// updated state), then both are timed with CUDA events and the speedup printed.
//
// Kernel versions:
//   v1 (in src/): a group of pow2(N) <= 32 lanes per (batch, channel) row, each lane owning
//      N / lanes state entries (coalesced row reads and writes), y summed with shuffles.
//
// Usage: state_update_dev [B Di N]   (default 16 1536 16; with D, z, dt_bias, softplus)
#include <torch/torch.h>

#include <array>
#include <cstdio>

#include "core/ops/mamba_ops.h"
#include "kernels/dev/bench_support.h"

namespace {

using namespace mmlab;
using kernels::dev::check_close;
using kernels::dev::dtype_name;
using kernels::dev::time_both;
using kernels::dev::with_impl;

bool run(int64_t B, int64_t Di, int64_t N, torch::Dtype dtype) {
  std::printf("selective_state_update %s  B=%lld Di=%lld N=%lld, D, z, dt_bias, softplus\n",
              dtype_name(dtype), static_cast<long long>(B), static_cast<long long>(Di),
              static_cast<long long>(N));
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  auto o = torch::TensorOptions().device(torch::kCUDA);
  auto state = torch::randn({B, Di, N}, o);  // (B, Di, N) fp32
  ops::SelectiveStateUpdateArgs a;
  a.x = torch::randn({B, Di}, o).to(dtype);
  a.dt = (torch::randn({B, Di}, o) - 2).to(dtype);
  a.A = -torch::exp(torch::randn({Di, N}, o) * 0.5);  // (Di, N)
  a.B = torch::randn({B, N}, o).to(dtype);
  a.C = torch::randn({B, N}, o).to(dtype);
  a.D = torch::randn({Di}, o);
  a.z = torch::randn({B, Di}, o).to(dtype);
  a.dt_bias = torch::randn({Di}, o) * 0.3;
  a.dt_softplus = true;
  ops::SelectiveStateUpdateArgs r = a;
  a.state = state.clone();
  r.state = state.clone();
  auto yk = with_impl("cuda", [&] { return ops::selective_state_update(a); });
  auto yr = ops::selective_state_update_reference(r);
  const double tol = dtype == torch::kBFloat16 ? 1.6e-2 : 2e-5;
  bool ok = check_close("y", yk, yr, tol, tol);
  ok &= check_close("state", a.state, r.state, 2e-5, 2e-5);
  const double elem = static_cast<double>(torch::elementSize(dtype));
  const double io = B * Di * N * 8.0 + B * Di * 4.0 * elem;  // state in + out, x, dt, z, y
  time_both("one step", io, [&] { ops::selective_state_update(a); });
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  return mmlab::kernels::dev::run_program(argc, argv, "state_update_dev",
                                          "state_update_dev [B Di N]", {16, 1536, 16},
                                          [](const auto& sizes) {
                                            const auto [B, Di, N] = sizes;
                                            bool ok = true;
                                            for (auto dtype : {torch::kFloat, torch::kBFloat16})
                                              ok &= run(B, Di, N, dtype);
                                            // The largest state the kernel takes.
                                            ok &= run(B, Di, 64, torch::kBFloat16);
                                            return ok;
                                          });
}
