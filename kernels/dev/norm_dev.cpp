// SPDX-License-Identifier: GPL-3.0-or-later
// Validate-and-bench for the norm kernels (kernels/src/norm.cu): at the model's shape (the fp32
// residual stream in, bf16 out, as every block's norm under autocast), LayerNorm and RMSNorm are
// checked against the reference twin on the output and every gradient, then both are timed,
// forward alone and forward + backward, with CUDA events.
//
// Usage: norm_dev [N D unused]   (default 65536 512: 256 x 256 tokens of the 25M models)
#include <torch/torch.h>

#include <array>
#include <cstdio>

#include "core/ops/norm_ops.h"
#include "kernels/dev/bench_support.h"

namespace {

using namespace mmlab;
using kernels::dev::check_close;
using kernels::dev::time_both;
using kernels::dev::with_impl;

struct Leaves {
  torch::Tensor x, weight, bias;
};

Leaves fresh(const Leaves& from) {
  auto leaf = [](const torch::Tensor& t) {
    return t.defined() ? t.detach().clone().requires_grad_() : torch::Tensor();
  };
  return {leaf(from.x), leaf(from.weight), leaf(from.bias)};
}

ops::NormArgs args_of(const Leaves& l, bool rms) {
  ops::NormArgs a;
  a.x = l.x;
  a.weight = l.weight;
  a.bias = l.bias;
  a.rms = rms;
  a.out_dtype = torch::kBFloat16;
  return a;
}

bool run(int64_t N, int64_t D, bool rms) {
  std::printf("norm %s  N=%lld D=%lld, fp32 rows in, bf16 out\n", rms ? "RMSNorm" : "LayerNorm",
              static_cast<long long>(N), static_cast<long long>(D));
  auto o = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(0);
  Leaves base{torch::randn({N, D}, o) * 2.0 + 0.5, 1.0 + 0.1 * torch::randn({D}, o),
              rms ? torch::Tensor() : 0.1 * torch::randn({D}, o)};
  auto dy = torch::randn({N, D}, o).to(torch::kBFloat16);  // (N, D)

  bool ok = true;
  {
    Leaves k = fresh(base), r = fresh(base);
    auto yk = with_impl("cuda", [&] { return ops::norm(args_of(k, rms)); });
    yk.backward(dy);
    auto yr = with_impl("reference", [&] { return ops::norm(args_of(r, rms)); });
    yr.backward(dy);
    ok &= check_close("y", yk, yr, 1e-2, 1e-2);
    ok &= check_close("dx", k.x.grad(), r.x.grad(), 1e-4, 1e-4);
    // Sums over N rows, in another order.
    ok &= check_close("dweight", k.weight.grad(), r.weight.grad(), 1e-4, 1e-2);
    if (!rms) ok &= check_close("dbias", k.bias.grad(), r.bias.grad(), 1e-4, 1e-2);
  }
  // fp32 x read, bf16 y written; the backward reads x and dy and writes dx.
  const double fwd_bytes = N * D * (4.0 + 2.0);
  const double bwd_bytes = N * D * (4.0 + 2.0 + 4.0);
  Leaves t = fresh(base);
  time_both("forward", fwd_bytes, [&] {
    torch::NoGradGuard no_grad;
    ops::norm(args_of(t, rms));
  });
  time_both("forward + backward", fwd_bytes + bwd_bytes,
            [&] { ops::norm(args_of(t, rms)).backward(dy); });
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  return mmlab::kernels::dev::run_program(argc, argv, "norm_dev", "norm_dev [N D unused]",
                                          {65536, 512, 0}, [](const auto& sizes) {
                                            const auto [N, D, unused] = sizes;
                                            (void)unused;
                                            bool ok = true;
                                            for (bool rms : {false, true}) ok &= run(N, D, rms);
                                            return ok;
                                          });
}
