// SPDX-License-Identifier: GPL-3.0-or-later
// What the validate-and-bench programs in kernels/dev share: their start (a GPU, the kernels, the
// sizes on the command line), runs pinned to one implementation, CUDA-event timings on LibTorch's
// current stream, a max-difference check against a reference and the printed rows.
#pragma once

#include <cuda_runtime.h>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/ops/registry.h"
#include "core/ops/torch_compat.h"
#include "kernels/register.h"

namespace mmlab::kernels::dev {

/// The kernels registered; false, with a line on stderr naming `program`, when no GPU is visible.
inline bool gpu_ready(const char* program) {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "%s: no CUDA device is visible; run it on a machine with a GPU.\n",
                 program);
    return false;
  }
  register_all();
  return true;
}

/// Reads the three optional sizes of a command line `PROGRAM [S0 S1 S2]` into `sizes`, which keep
/// their defaults without arguments; false, with `usage` on stderr, for any other count.
inline bool read_sizes(int argc, char** argv, const char* usage, std::array<int64_t, 3>& sizes) {
  if (argc == 1) return true;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s\n", usage);
    return false;
  }
  for (int i = 0; i < 3; ++i) sizes[i] = std::atoll(argv[i + 1]);
  return true;
}

/// The exit status of a program whose checks passed (`ok`) or not, with its last line.
inline int finish(bool ok) {
  std::printf(ok ? "all checks passed\n" : "SOME CHECKS FAILED\n");
  return ok ? 0 : 1;
}

/// A program's main: the GPU and the kernels, the three sizes of `usage` from the command line
/// (`sizes` without arguments), then `run(sizes)`, which says whether every check passed.
template <class Run>
int run_program(int argc, char** argv, const char* program, const char* usage,
                std::array<int64_t, 3> sizes, Run&& run) {
  if (!gpu_ready(program)) return 1;
  if (!read_sizes(argc, argv, usage, sizes)) return 2;
  return finish(run(sizes));
}

/// "bf16" or "fp32", as the programs name the dtype of a run.
inline const char* dtype_name(torch::Dtype dtype) {
  return dtype == torch::kBFloat16 ? "bf16" : "fp32";
}

/// `fn()` with every op pinned to the implementation `impl` ("reference", "cuda").
template <class Fn>
decltype(auto) with_impl(const char* impl, Fn&& fn) {
  ops::ScopedOpsChoice choice(ops::OpsChoice{impl, {}});
  return fn();
}

struct EventDeleter {
  void operator()(cudaEvent_t e) const { cudaEventDestroy(e); }
};
using Event = std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, EventDeleter>;

inline Event make_event() {
  cudaEvent_t e = nullptr;
  if (cudaEventCreate(&e) != cudaSuccess) throw std::runtime_error("cudaEventCreate failed.");
  return Event(e);
}

/// Mean milliseconds per call of `fn`, timed with CUDA events around `iters` calls after
/// `warmup` untimed ones.
template <class Fn>
double time_ms(Fn&& fn, int warmup = 3, int iters = 20) {
  for (int i = 0; i < warmup; ++i) fn();
  auto stream = static_cast<cudaStream_t>(compat::current_cuda_stream());
  Event start = make_event(), stop = make_event();
  cudaEventRecord(start.get(), stream);
  for (int i = 0; i < iters; ++i) fn();
  cudaEventRecord(stop.get(), stream);
  cudaEventSynchronize(stop.get());
  float ms = 0.f;
  cudaEventElapsedTime(&ms, start.get(), stop.get());
  return ms / iters;
}

/// Prints max |actual - expected| and whether it is within atol + rtol * |expected|.
inline bool check_close(const std::string& what, const torch::Tensor& actual,
                        const torch::Tensor& expected, double rtol, double atol) {
  auto a = actual.to(torch::kFloat), e = expected.to(torch::kFloat);
  const float diff = (a - e).abs().max().item<float>();
  const bool ok = ((a - e).abs() - (atol + rtol * e.abs())).max().item<float>() <= 0.f;
  std::printf("  check %-28s max |diff| %.3g  %s\n", what.c_str(), diff, ok ? "ok" : "FAILED");
  return ok;
}

inline void print_timing(const std::string& what, double ref_ms, double cuda_ms, double bytes) {
  std::printf("  %-44s reference %8.3f ms  cuda %8.4f ms  speedup %6.1fx  %7.0f GB/s\n",
              what.c_str(), ref_ms, cuda_ms, ref_ms / cuda_ms, bytes / (cuda_ms * 1e-3) / 1e9);
}

/// Times `fn` with the ops pinned to the reference, then to the CUDA implementation, and prints
/// the row; `bytes` is what one call moves (for the CUDA one's bandwidth).
template <class Fn>
void time_both(const std::string& what, double bytes, Fn&& fn) {
  const double ref_ms = with_impl("reference", [&] { return time_ms(fn); });
  const double cuda_ms = with_impl("cuda", [&] { return time_ms(fn); });
  print_timing(what, ref_ms, cuda_ms, bytes);
}

}  // namespace mmlab::kernels::dev
