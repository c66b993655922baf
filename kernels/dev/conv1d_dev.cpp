// SPDX-License-Identifier: GPL-3.0-or-later
// Validate-and-bench for the causal conv1d kernels (kernels/src/causal_conv1d.cu): on random
// inputs at a training shape, the forward, the gradients and the decode step are checked against
// the reference twins, then both are timed with CUDA events and the speedup printed.
//
// Kernel versions:
//   v1: one block per (batch, channel, tile of up to 512 steps), the tile and its halo staged in
//      shared memory in fp32 through 16-byte loads, 4 outputs per thread; backward recomputes the
//      SiLU pre-activation and writes per-block dweight/dbias partial sums. On the model's rows
//      (B 256, Di 1024, L 256) a fifth of the memory bandwidth: the blocks were too short.
//   v2 (in src/): one warp per (batch, channel) row in chunks of 256 steps, 8 consecutive steps
//      per lane in registers through 16-byte loads and stores, the halos by warp shuffles; no
//      shared memory, no barriers; one dweight/dbias row per (batch, channel).
//
// Usage: conv1d_dev [B Di L]   (default 8 1536 2048, K = 4, bias, SiLU)
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

/// Checks and times the sequence op at one dtype; true when the checks pass.
bool run_conv(int64_t B, int64_t Di, int64_t L, int64_t K, torch::Dtype dtype) {
  std::printf("causal_conv1d %s  B=%lld Di=%lld L=%lld K=%lld, bias, SiLU, x a channel slice\n",
              dtype_name(dtype), static_cast<long long>(B), static_cast<long long>(Di),
              static_cast<long long>(L), static_cast<long long>(K));
  auto o = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(0);
  // x as the model has it: the first half of the (B, 2Di, L) input projection.
  auto xz = torch::randn({B, 2 * Di, L}, o).to(dtype);  // (B, 2Di, L)
  auto weight = torch::randn({Di, K}, o) * 0.5;         // (Di, K) fp32
  auto bias = torch::randn({Di}, o);                    // (Di)
  auto dy = torch::randn({B, Di, L}, o).to(dtype);      // (B, Di, L)

  // Checks: kernel vs the fp32 reference on the same values.
  bool ok = true;
  {
    auto xk = xz.detach().requires_grad_();
    auto wk = weight.detach().clone().requires_grad_(), bk = bias.detach().clone().requires_grad_();
    ops::CausalConv1dArgs ka{{}, xk.narrow(1, 0, Di), wk, bk, true};
    auto yk = with_impl("cuda", [&] { return ops::causal_conv1d(ka); });
    yk.backward(dy);
    auto xr = xz.detach().to(torch::kFloat).requires_grad_();
    auto wr = weight.detach().clone().requires_grad_(), br = bias.detach().clone().requires_grad_();
    ops::CausalConv1dArgs ra{{}, xr.narrow(1, 0, Di), wr, br, true};
    auto yr = ops::causal_conv1d_reference(ra);
    yr.backward(dy.to(torch::kFloat));
    const double tol = dtype == torch::kBFloat16 ? 1.6e-2 : 2e-5;
    ok &= check_close("y", yk, yr, tol, tol);
    ok &= check_close("dx", xk.grad(), xr.grad(), tol, tol);
    ok &= check_close("dweight", wk.grad(), wr.grad(), 1e-3, 1e-3);
    ok &= check_close("dbias", bk.grad(), br.grad(), 1e-3, 1e-3);
  }

  // Timings at the dtype (the reference computes in fp32 and rounds its output to x's dtype).
  const double elem = static_cast<double>(torch::elementSize(dtype));
  const double io_fwd = 2.0 * B * Di * L * elem;  // read x, write y
  const double io_bwd = 3.0 * B * Di * L * elem;  // read x, dy; write dx
  torch::NoGradGuard no_grad;
  ops::CausalConv1dArgs a{{}, xz.narrow(1, 0, Di), weight, bias, true};
  time_both("forward", io_fwd, [&] { ops::causal_conv1d(a); });
  time_both("forward + backward", io_fwd + io_bwd, [&] {
    torch::AutoGradMode grad(true);
    auto x = xz.narrow(1, 0, Di).detach().requires_grad_();
    auto w = weight.detach().requires_grad_(), b = bias.detach().requires_grad_();
    ops::causal_conv1d(ops::CausalConv1dArgs{{}, x, w, b, true}).backward(dy);
  });
  return ok;
}

/// Checks and times the decode step at one dtype (state in x's dtype); true when checks pass.
bool run_update(int64_t B, int64_t Di, int64_t K, torch::Dtype dtype) {
  std::printf("causal_conv1d_update %s  B=%lld Di=%lld K=%lld, bias, SiLU\n", dtype_name(dtype),
              static_cast<long long>(B), static_cast<long long>(Di), static_cast<long long>(K));
  torch::NoGradGuard no_grad;
  auto o = torch::TensorOptions().device(torch::kCUDA);
  auto state = torch::randn({B, Di, K}, o).to(dtype);  // (B, Di, K)
  auto x = torch::randn({B, Di}, o).to(dtype);         // (B, Di)
  auto weight = torch::randn({Di, K}, o) * 0.5;
  auto bias = torch::randn({Di}, o);
  ops::CausalConv1dUpdateArgs a{{}, state.clone(), x, weight, bias, true};
  ops::CausalConv1dUpdateArgs r{{}, state.clone(), x, weight, bias, true};
  auto yk = with_impl("cuda", [&] { return ops::causal_conv1d_update(a); });
  auto yr = ops::causal_conv1d_update_reference(r);
  bool ok = check_close("y", yk, yr, 1e-2, 1e-2);
  ok &= check_close("conv_state", a.conv_state, r.conv_state, 0, 0);
  const double elem = static_cast<double>(torch::elementSize(dtype));
  const double io = B * Di * (2.0 * K + 2.0) * elem;  // state read + written, x, y
  time_both("one step", io, [&] { ops::causal_conv1d_update(a); });
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  return mmlab::kernels::dev::run_program(argc, argv, "conv1d_dev", "conv1d_dev [B Di L]",
                                          {8, 1536, 2048}, [](const auto& sizes) {
                                            const auto [B, Di, L] = sizes;
                                            bool ok = true;
                                            for (auto dtype : {torch::kFloat, torch::kBFloat16})
                                              ok &= run_conv(B, Di, L, 4, dtype);
                                            for (auto dtype : {torch::kFloat, torch::kBFloat16})
                                              ok &= run_update(B, Di, 4, dtype);
                                            return ok;
                                          });
}
