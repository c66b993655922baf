// SPDX-License-Identifier: GPL-3.0-or-later
// One block per row: pass 1 reads the row as 16-byte vectors keeping an online (max, sum of
// exp) per thread, a block reduction gives the log-sum-exp; pass 2 rewrites the row as its
// gradient. A row of 50,257 bf16 logits is ~100 KB, so pass 2 mostly reads from L2.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/src/cross_entropy.h"
#include "kernels/src/element_type.cuh"

namespace mmlab::kernels {

namespace {

constexpr int kThreads = 512;

template <typename T>
struct Vec;
template <>
struct Vec<__nv_bfloat16> {
  static constexpr int kWidth = 8;
};
template <>
struct Vec<float> {
  static constexpr int kWidth = 4;
};

/// Merges online softmax states (m, s): s is the sum of exp(x - m) over the elements seen.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float hi = fmaxf(m, m2);
  s = s * __expf(m - hi) + s2 * __expf(m2 - hi);
  m = hi;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_kernel(T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                              const int64_t* __restrict__ targets, float* __restrict__ losses,
                              float grad_scale) {
  constexpr int W = Vec<T>::kWidth;
  const int64_t row = blockIdx.x;
  T* x = logits + row * row_stride;
  const int64_t n_vec = (vocab + W - 1) / W;
  const uint4* xv = reinterpret_cast<const uint4*>(x);

  float m = -INFINITY, s = 0.f;
  for (int64_t v = threadIdx.x; v < n_vec; v += kThreads) {
    uint4 raw = xv[v];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      if (v * W + k >= vocab) break;
      const float f = to_float(e[k]);
      if (f > m) {
        s = s * __expf(m - f) + 1.f;
        m = f;
      } else {
        s += __expf(f - m);
      }
    }
  }
  // Warp, then block reduction of (m, s).
  for (int off = 16; off > 0; off /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
    merge(m, s, m2, s2);
  }
  __shared__ float warp_m[kThreads / 32], warp_s[kThreads / 32];
  __shared__ float row_lse;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < kThreads / 32 ? warp_m[lane] : -INFINITY;
    s = lane < kThreads / 32 ? warp_s[lane] : 0.f;
    for (int off = 16; off > 0; off /= 2) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
      const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
      merge(m, s, m2, s2);
    }
    if (lane == 0) {
      const float lse = m + logf(s);
      row_lse = lse;
      const int64_t t = targets[row];
      losses[row] = (t >= 0 && t < vocab) ? lse - to_float(x[t]) : NAN;
    }
  }
  __syncthreads();
  if (grad_scale == 0.f) return;

  const float lse = row_lse;
  const int64_t target = targets[row];
  uint4* xw = reinterpret_cast<uint4*>(x);
  for (int64_t v = threadIdx.x; v < n_vec; v += kThreads) {
    uint4 raw = xw[v];
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const int64_t j = v * W + k;
      float g = 0.f;
      if (j < vocab) g = (__expf(to_float(e[k]) - lse) - (j == target ? 1.f : 0.f)) * grad_scale;
      e[k] = from_float<T>(g);
    }
    xw[v] = raw;
  }
}

}  // namespace

const char* cross_entropy_rows(const CrossEntropyRowsParams& p, void* stream) {
  if (p.rows == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.type == ElementType::kBFloat16) {
    cross_entropy_rows_kernel<__nv_bfloat16><<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(
        static_cast<__nv_bfloat16*>(p.logits), p.vocab, p.row_stride, p.targets, p.losses,
        p.grad_scale);
  } else {
    cross_entropy_rows_kernel<float><<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(
        static_cast<float*>(p.logits), p.vocab, p.row_stride, p.targets, p.losses, p.grad_scale);
  }
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace mmlab::kernels
