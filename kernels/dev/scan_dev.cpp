// SPDX-License-Identifier: GPL-3.0-or-later
// Validate-and-bench for the fused selective scan (kernels/src/selective_scan.cu): on random
// inputs at several shapes, y, last_state and every gradient are checked against the reference
// twin (core's sequential LibTorch scan) on the GPU; then forward and forward+backward of both are
// timed with CUDA events and a table with the speedups printed. Exit status 1 when a check fails.
//
// Kernel versions:
//   v1 (in src/): a block per (batch, 32 channels), warp w carrying states w*kNPT.. of each lane's
//      channel through time, tiles of 32/kNPT steps staged in shared memory; carries every 4
//      tiles; backward recomputes a chunk from its carry, reverse recurrence in registers, dB/dC
//      reduce-scattered over the lanes (one atomic per block and (b, n, t)).
//   v2: both kernels bound by instruction issue (ncu: 80% / 70% issue slots busy, the integer and
//      logic pipe the busiest), most of it per (channel, step) rather than per state: MUFU
//      softplus/sigmoid instead of libm's, the sums over states factored out of the reverse
//      loop, two steps per thread in the staging and output passes. B 256, Di 1024, L 256, N 16
//      bf16 forward + backward 4.91 -> 4.58 ms.
//   v3: a carry per tile (tiles_per_chunk 1, 4x the carry memory: 537 MB per call at that
//      shape), so the backward has no recomputation pass: the kernels alone 3.900 -> 3.676 ms
//      (every 4 tiles -> every tile, side by side in one run); y, dz written in z's layout.
//
// Usage: scan_dev [--check-only | --profile]
//   --profile: only the target shape's kernel forward + backward, twice (for a profiler that skips
//   the first launch of each).
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/ops/mamba_ops.h"
#include "kernels/dev/bench_support.h"
#include "kernels/src/mamba_launch.h"

namespace {

using namespace mmlab;
using kernels::dev::dtype_name;
using kernels::dev::time_ms;

struct Shape {
  int64_t B, Di, L, N;
  torch::Dtype dtype;  // u, delta, z, B, C
  bool timed;
};

std::string describe(const Shape& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "B=%lld Di=%lld L=%lld N=%lld %s", static_cast<long long>(s.B),
                static_cast<long long>(s.Di), static_cast<long long>(s.L),
                static_cast<long long>(s.N), dtype_name(s.dtype));
  return buf;
}

/// The Mamba layer's call: z, D, delta_bias and softplus on; u and z channel halves of one
/// (B, 2Di, L) tensor as the input projection makes them.
struct Inputs {
  torch::Tensor xz, delta, A, B, C, D, delta_bias, dy;
};

Inputs make_inputs(const Shape& s) {
  torch::manual_seed(0);
  const auto o = torch::TensorOptions().device(torch::kCUDA);
  Inputs in;
  in.xz = torch::randn({s.B, 2 * s.Di, s.L}, o).to(s.dtype);               // (B, 2Di, L)
  in.delta = (torch::randn({s.B, s.Di, s.L}, o) * 0.5 - 1.0).to(s.dtype);  // (B, Di, L)
  in.A = -torch::exp(torch::randn({s.Di, s.N}, o) * 0.5);                  // (Di, N)
  in.B = torch::randn({s.B, s.N, s.L}, o).to(s.dtype);                     // (B, N, L)
  in.C = torch::randn({s.B, s.N, s.L}, o).to(s.dtype);                     // (B, N, L)
  in.D = torch::randn({s.Di}, o);                                          // (Di)
  in.delta_bias = torch::randn({s.Di}, o) * 0.3 - 0.5;                     // (Di)
  in.dy = torch::randn({s.B, s.Di, s.L}, o).to(s.dtype);                   // (B, Di, L)
  return in;
}

/// Leaves (fresh, requiring grad when `grad`) and the op's arguments over them.
struct Call {
  std::vector<torch::Tensor> leaves;  // xz, delta, A, B, C, D, delta_bias
  ops::SelectiveScanArgs args;
};

Call make_call(const Inputs& in, int64_t Di, bool grad) {
  Call c;
  for (const torch::Tensor& t : {in.xz, in.delta, in.A, in.B, in.C, in.D, in.delta_bias}) {
    c.leaves.push_back(grad ? t.detach().clone().requires_grad_() : t);
  }
  ops::SelectiveScanArgs& a = c.args;
  a.u = c.leaves[0].narrow(1, 0, Di);
  a.z = c.leaves[0].narrow(1, Di, Di);
  a.delta = c.leaves[1];
  a.A = c.leaves[2];
  a.B = c.leaves[3];
  a.C = c.leaves[4];
  a.D = c.leaves[5];
  a.delta_bias = c.leaves[6];
  a.delta_softplus = true;
  a.return_last_state = true;
  return c;
}

struct Outputs {
  torch::Tensor y, last_state;
  std::vector<torch::Tensor> grads;  // of the leaves
};

Outputs run(const char* impl, const Inputs& in, int64_t Di) {
  ops::ScopedOpsChoice choice(ops::OpsChoice{impl, {}});
  Call c = make_call(in, Di, /*grad=*/true);
  ops::SelectiveScanResult r = ops::selective_scan(c.args);
  Outputs out{r.y.detach(), r.last_state, {}};
  out.grads = torch::autograd::grad({r.y}, c.leaves, {in.dy});
  return out;
}

/// max |got - want| / max |want|, printed; true when within the dtype's tolerance.
bool check(const char* what, const torch::Tensor& got, const torch::Tensor& want) {
  const double tol = want.scalar_type() == torch::kBFloat16 ? 2e-2 : 1e-4;
  auto g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  const double scale = std::max(w.abs().max().item<double>(), 1e-30);
  const double diff = (g - w).abs().max().item<double>();
  const bool finite = torch::isfinite(g).all().item<bool>();
  const bool ok = finite && got.sizes() == want.sizes() && diff <= tol * scale;
  std::printf("    %-12s max |diff| %10.3e  relative %10.3e  (tol %.0e)  %s\n", what, diff,
              diff / scale, tol, ok ? "ok" : "FAILED");
  return ok;
}

bool validate(const Shape& s) {
  std::printf("  %s\n", describe(s).c_str());
  const Inputs in = make_inputs(s);
  const Outputs want = run("reference", in, s.Di);
  const Outputs got = run("cuda", in, s.Di);
  bool ok = check("y", got.y, want.y);
  ok &= check("last_state", got.last_state, want.last_state);
  const char* names[] = {"d(u,z)", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias"};
  for (size_t i = 0; i < got.grads.size(); ++i) ok &= check(names[i], got.grads[i], want.grads[i]);
  return ok;
}

struct Timing {
  double fwd_ms, fwd_bwd_ms;
};

Timing time_impl(const char* impl, const Inputs& in, int64_t Di, int warmup, int iters) {
  ops::ScopedOpsChoice choice(ops::OpsChoice{impl, {}});
  Call plain = make_call(in, Di, /*grad=*/false);
  Call graded = make_call(in, Di, /*grad=*/true);
  Timing t{};
  t.fwd_ms = time_ms(
      [&] {
        torch::NoGradGuard no_grad;
        ops::selective_scan(plain.args);
      },
      warmup, iters);
  t.fwd_bwd_ms = time_ms(
      [&] {
        ops::SelectiveScanResult r = ops::selective_scan(graded.args);
        torch::autograd::grad({r.y}, graded.leaves, {in.dy});
      },
      warmup, iters);
  return t;
}

/// The kernels alone, forward keeping carries every `tiles_per_chunk` tiles, then backward.
double time_kernels_fwd_bwd(const Inputs& in, int64_t Di, int tiles_per_chunk) {
  const torch::Tensor u = in.xz.narrow(1, 0, Di), z = in.xz.narrow(1, Di, Di);
  return time_ms(
      [&] {
        kernels::ScanForward f = kernels::run_selective_scan_forward(
            u, in.delta, in.A, in.B, in.C, in.D, z, in.delta_bias, /*delta_softplus=*/true,
            /*want_last_state=*/false, /*keep_carries=*/true, tiles_per_chunk);
        kernels::run_selective_scan_backward(u, in.delta, in.A, in.B, in.C, in.D, z, in.delta_bias,
                                             /*delta_softplus=*/true, f.carries, in.dy,
                                             torch::Tensor(), tiles_per_chunk);
      },
      3, 20);
}

}  // namespace

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check-only") == 0;
  const bool profile = argc > 1 && std::strcmp(argv[1], "--profile") == 0;
  if (!kernels::dev::gpu_ready("scan_dev")) return 2;
  const auto bf16 = torch::kBFloat16, f32 = torch::kFloat;
  const std::vector<Shape> shapes = {
      {256, 1024, 256, 16, bf16, true},  // the target
      {256, 1024, 256, 16, f32, true},
      {8, 1536, 2048, 16, bf16, true},  // a 130M-class model at training length
      {2, 256, 4096, 64, f32, false},
      {2, 256, 4096, 64, bf16, false},
      {4, 96, 1, 16, f32, false},
      {3, 100, 257, 16, f32, false},
      {3, 100, 257, 5, bf16, false},
      {2, 70, 333, 33, f32, false},
  };

  if (profile) {
    const Inputs in = make_inputs(shapes.front());
    for (int i = 0; i < 2; ++i) run("cuda", in, shapes.front().Di);
    return 0;
  }
  std::printf(
      "selective_scan: kernel vs reference (z, D, delta_bias, softplus on; u, z slices "
      "of (B, 2Di, L))\n");
  bool ok = true;
  for (const Shape& s : shapes) ok &= validate(s);
  std::printf("checks: %s\n", ok ? "all ok" : "SOME FAILED");
  if (check_only) return ok ? 0 : 1;

  std::printf("\n%-34s %12s %12s %9s %12s %12s %9s\n", "shape", "ref fwd ms", "cuda fwd ms",
              "speedup", "ref f+b ms", "cuda f+b ms", "speedup");
  for (const Shape& s : shapes) {
    if (!s.timed) continue;
    const Inputs in = make_inputs(s);
    const Timing ref = time_impl("reference", in, s.Di, 1, 3);
    const Timing cuda = time_impl("cuda", in, s.Di, 3, 20);
    std::printf("%-34s %12.3f %12.4f %8.1fx %12.3f %12.4f %8.1fx\n", describe(s).c_str(),
                ref.fwd_ms, cuda.fwd_ms, ref.fwd_ms / cuda.fwd_ms, ref.fwd_bwd_ms, cuda.fwd_bwd_ms,
                ref.fwd_bwd_ms / cuda.fwd_bwd_ms);
  }

  const Shape& target = shapes.front();
  const Inputs in = make_inputs(target);
  std::printf("\nkernels alone, forward + backward, %s: carries every\n", describe(target).c_str());
  const double base = time_kernels_fwd_bwd(in, target.Di, 4);
  for (int tiles : {4, 2, 1}) {
    const double ms = tiles == 4 ? base : time_kernels_fwd_bwd(in, target.Di, tiles);
    std::printf("  %d tile(s)%s  %8.4f ms  x%.3f\n", tiles,
                tiles == kernels::kSelectiveScanTilesPerChunk ? " (default)" : "          ", ms,
                base / ms);
  }
  return ok ? 0 : 1;
}
