// SPDX-License-Identifier: GPL-3.0-or-later
// Timing and checking helpers of the validate-and-bench programs in kernels/dev: CUDA events on
// LibTorch's current stream, a max-difference check against a reference.
#pragma once

#include <cuda_runtime.h>
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/ops/torch_compat.h"

namespace mmlab::kernels::dev {

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

}  // namespace mmlab::kernels::dev
