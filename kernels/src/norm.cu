// SPDX-License-Identifier: GPL-3.0-or-later
// One warp per row, the row in registers (kPer columns per lane, lane + 32 j, so every load and
// store of a warp is one contiguous span): the forward reads x once and writes y once; the
// backward reads x and dy once, writes dx once and keeps its dweight/dbias sums in registers
// across the rows it visits, one partial row per warp at the end (LibTorch's γ, β reduction
// re-read the whole of x and dy at a fifth of the bandwidth).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"
#include "kernels/src/norm.h"

namespace mmlab::kernels {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
// Backward warps in all, whatever N: 256 blocks, about two per SM of an H100/H200.
constexpr int64_t kBackwardWarps = 256 * kWarps;

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename TX, typename TY, int kPer>
__global__ void __launch_bounds__(kThreads) norm_forward_kernel(NormParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= p.rows) return;  // a whole warp
  const int64_t D = p.cols;
  const TX* x = static_cast<const TX*>(p.x) + row * D;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t c = lane + 32 * j;
    v[j] = c < D ? to_float(x[c]) : 0.f;
  }
  float mean = 0.f;
  if (!p.rms) {
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) s += v[j];
    mean = warp_sum(s) / static_cast<float>(D);
  }
  // The variance from the centred values (two passes over registers, not E[x^2] - mean^2).
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const float d = lane + 32 * j < D ? v[j] - mean : 0.f;
    sq += d * d;
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(D) + p.eps);
  TY* y = static_cast<TY*>(p.y) + row * D;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t c = lane + 32 * j;
    if (c >= D) continue;
    float o = (v[j] - mean) * rstd * p.weight[c];
    if (p.bias != nullptr) o += p.bias[c];
    y[c] = from_float<TY>(o);
  }
  if (lane == 0) {
    p.mean[row] = mean;
    p.rstd[row] = rstd;
  }
}

template <typename TX, typename TG, int kPer>
__global__ void __launch_bounds__(kThreads) norm_backward_kernel(NormBackwardParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  const int64_t D = p.cols;
  const float inv_d = 1.f / static_cast<float>(D);
  float w[kPer], dw[kPer], db[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t c = lane + 32 * j;
    w[j] = c < D ? p.weight[c] : 0.f;
    dw[j] = 0.f;
    db[j] = 0.f;
  }
  for (int64_t row = warp; row < p.rows; row += warps) {
    const TX* x = static_cast<const TX*>(p.x) + row * D;
    const TG* dy = static_cast<const TG*>(p.dy) + row * D;
    const float mean = p.mean[row], rstd = p.rstd[row];
    float xhat[kPer], g[kPer];
    float sum_g = 0.f, sum_gx = 0.f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = lane + 32 * j;
      const float xv = c < D ? to_float(x[c]) : 0.f;
      const float d = c < D ? to_float(dy[c]) : 0.f;
      xhat[j] = c < D ? (xv - mean) * rstd : 0.f;
      g[j] = d * w[j];
      dw[j] += d * xhat[j];
      db[j] += d;
      sum_g += g[j];
      sum_gx += g[j] * xhat[j];
    }
    const float mean_g = p.rms ? 0.f : warp_sum(sum_g) * inv_d;
    const float mean_gx = warp_sum(sum_gx) * inv_d;
    TX* dx = static_cast<TX*>(p.dx) + row * D;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = lane + 32 * j;
      if (c < D) dx[c] = from_float<TX>(rstd * (g[j] - mean_g - xhat[j] * mean_gx));
    }
  }
  float* dw_row = p.dweight_partial + warp * D;
  float* db_row = p.dbias_partial != nullptr ? p.dbias_partial + warp * D : nullptr;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t c = lane + 32 * j;
    if (c >= D) continue;
    dw_row[c] = dw[j];
    if (db_row != nullptr) db_row[c] = db[j];
  }
}

// Calls f.template operator()<TX, TY, kPer>() for the run-time types and width; false when the
// width is over kNormMaxCols.
template <typename F>
bool dispatch(ElementType x_type, ElementType y_type, int64_t cols, F&& f) {
  auto with_width = [&](auto tx, auto ty) {
    using TX = decltype(tx);
    using TY = decltype(ty);
    if (cols <= 128) {
      f.template operator()<TX, TY, 4>();
    } else if (cols <= 256) {
      f.template operator()<TX, TY, 8>();
    } else if (cols <= 512) {
      f.template operator()<TX, TY, 16>();
    } else if (cols <= kNormMaxCols) {
      f.template operator()<TX, TY, 32>();
    } else {
      return false;
    }
    return true;
  };
  const bool x_bf16 = x_type == ElementType::kBFloat16, y_bf16 = y_type == ElementType::kBFloat16;
  if (x_bf16 && y_bf16) return with_width(__nv_bfloat16{}, __nv_bfloat16{});
  if (x_bf16) return with_width(__nv_bfloat16{}, float{});
  if (y_bf16) return with_width(float{}, __nv_bfloat16{});
  return with_width(float{}, float{});
}

struct LaunchForward {
  const NormParams& p;
  cudaStream_t stream;
  template <typename TX, typename TY, int kPer>
  void operator()() const {
    const auto blocks = static_cast<unsigned>((p.rows + kWarps - 1) / kWarps);
    norm_forward_kernel<TX, TY, kPer><<<blocks, kThreads, 0, stream>>>(p);
  }
};

struct LaunchBackward {
  const NormBackwardParams& p;
  cudaStream_t stream;
  template <typename TX, typename TG, int kPer>
  void operator()() const {
    const auto blocks = static_cast<unsigned>(norm_backward_partial_rows(p.rows) / kWarps);
    norm_backward_kernel<TX, TG, kPer><<<blocks, kThreads, 0, stream>>>(p);
  }
};

}  // namespace

int64_t norm_backward_partial_rows(int64_t rows) {
  const int64_t blocks = (std::min(rows, kBackwardWarps) + kWarps - 1) / kWarps;
  return blocks * kWarps;
}

const char* norm_forward(const NormParams& p, void* stream) {
  if (p.rows == 0) return nullptr;
  if (!dispatch(p.x_type, p.y_type, p.cols, LaunchForward{p, static_cast<cudaStream_t>(stream)})) {
    return "row wider than the kernel keeps in registers";
  }
  return last_launch_error();
}

const char* norm_backward(const NormBackwardParams& p, void* stream) {
  if (p.rows == 0) return nullptr;
  if (!dispatch(p.x_type, p.dy_type, p.cols,
                LaunchBackward{p, static_cast<cudaStream_t>(stream)})) {
    return "row wider than the kernel keeps in registers";
  }
  return last_launch_error();
}

}  // namespace mmlab::kernels
