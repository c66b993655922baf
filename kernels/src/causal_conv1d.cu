// SPDX-License-Identifier: GPL-3.0-or-later
// Causal depthwise conv1d kernels (see causal_conv1d.h for the maths and shapes).
//
// Forward and backward: one warp per (batch, channel) row, walking the row in chunks of 256
// steps; a lane owns 8 consecutive steps of a chunk, read and written with 16-byte vector loads
// and stores when the row is aligned. The K-1 inputs left of a lane's steps come from the lane
// before it by a shuffle (lane 0 keeps them from the previous chunk), so nothing is staged in
// shared memory and no block waits on another warp: a block of 4 warps is 4 independent rows.
// (The first version, one block per (batch, channel, tile) staging the tile in shared memory,
// reached a fifth of the memory bandwidth on the model's 256-step rows: one short block per row
// spent its time on its own start, weights and barrier.)
// The backward recomputes the pre-activation for SiLU from x instead of saving it, takes the
// K-1 gradients right of a lane's steps from the lane after it, and writes one row of
// (dweight, dbias) sums per (batch, channel) row: a deterministic reduction without atomics.
// The decode step is one thread per (batch, channel).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/src/causal_conv1d.h"
#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"

namespace mmlab::kernels {

namespace {

constexpr int kMaxWidth = 4;
constexpr int kHalo = kMaxWidth - 1;  // inputs a lane needs beyond its own steps, at most
constexpr int kLaneSteps = 8;         // consecutive steps per lane: 16 bytes of bf16
constexpr int kChunk = 32 * kLaneSteps;
constexpr int kRowsPerBlock = 4;  // warps per block, one row each
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
bool rows_aligned(const void* base, int64_t batch_stride, int64_t channel_stride) {
  const auto bytes = [](int64_t stride) { return stride * static_cast<int64_t>(sizeof(T)); };
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && bytes(batch_stride) % 16 == 0 &&
         bytes(channel_stride) % 16 == 0;
}

/// v[j] = row[t + j] in fp32 for j < kLaneSteps, 0 outside [0, length). t is a multiple of
/// kLaneSteps, so with `vec_ok` (the row 16-byte aligned) a full lane is whole vectors.
template <typename T>
__device__ __forceinline__ void load_steps(const T* row, int64_t t, int64_t length, bool vec_ok,
                                           float (&v)[kLaneSteps]) {
  if (vec_ok && t + kLaneSteps <= length) {
    constexpr int kPerVector = 16 / sizeof(T);
#pragma unroll
    for (int q = 0; q < kLaneSteps / kPerVector; ++q) {
      const uint4 raw = reinterpret_cast<const uint4*>(row + t)[q];
      const T* elems = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int j = 0; j < kPerVector; ++j) v[q * kPerVector + j] = to_float(elems[j]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < kLaneSteps; ++j) v[j] = t + j < length ? to_float(row[t + j]) : 0.f;
  }
}

/// row[t + j] = v[j] for the steps inside [0, length).
template <typename T>
__device__ __forceinline__ void store_steps(T* row, int64_t t, int64_t length, bool vec_ok,
                                            const float (&v)[kLaneSteps]) {
  if (vec_ok && t + kLaneSteps <= length) {
    constexpr int kPerVector = 16 / sizeof(T);
#pragma unroll
    for (int q = 0; q < kLaneSteps / kPerVector; ++q) {
      uint4 raw;
      T* elems = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int j = 0; j < kPerVector; ++j) elems[j] = from_float<T>(v[q * kPerVector + j]);
      reinterpret_cast<uint4*>(row + t)[q] = raw;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kLaneSteps; ++j) {
      if (t + j < length) row[t + j] = from_float<T>(v[j]);
    }
  }
}

/// The kHalo inputs left of this lane's steps: the previous lane's last ones, lane 0 the
/// previous chunk's (`carry`, which then becomes this chunk's last inputs for the next one).
__device__ __forceinline__ void left_halo(const float (&v)[kLaneSteps], int lane,
                                          float (&carry)[kHalo], float (&halo)[kHalo]) {
#pragma unroll
  for (int j = 0; j < kHalo; ++j) {
    const float from_left = __shfl_up_sync(kFullMask, v[kLaneSteps - kHalo + j], 1);
    halo[j] = lane == 0 ? carry[j] : from_left;
    carry[j] = __shfl_sync(kFullMask, v[kLaneSteps - kHalo + j], 31);
  }
}

/// Input j of the lane's window: halo for j < 0, own steps otherwise.
__device__ __forceinline__ float window_at(const float (&halo)[kHalo], const float (&v)[kLaneSteps],
                                           int j) {
  return j < 0 ? halo[kHalo + j] : v[j];
}

__device__ __forceinline__ float silu_grad(float pre) {
  const float s = 1.f / (1.f + expf(-pre));
  return s * (1.f + pre * (1.f - s));
}

struct RowIndex {
  int64_t b, c;
  bool valid;
};

__device__ __forceinline__ RowIndex row_index(int64_t batch, int64_t channels) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  return {row / channels, row % channels, row < batch * channels};
}

template <typename T, int K>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    conv_fwd_kernel(CausalConv1dParams p, bool x_vec_ok, bool out_vec_ok) {
  const RowIndex ix = row_index(p.batch, p.channels);
  if (!ix.valid) return;  // a whole warp: the shuffles below see full warps only
  const int lane = threadIdx.x % 32;
  const T* x_row = static_cast<const T*>(p.x) + ix.b * p.x_batch_stride + ix.c * p.x_channel_stride;
  T* out_row = static_cast<T*>(p.out) + (ix.b * p.channels + ix.c) * p.length;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = load_at(p.weight, ix.c, k);
  const float bias = p.bias.data ? load_at(p.bias, ix.c) : 0.f;
  float carry[kHalo] = {};  // x left of t = 0 is 0
  for (int64_t t0 = 0; t0 < p.length; t0 += kChunk) {
    const int64_t t = t0 + lane * kLaneSteps;
    float x[kLaneSteps], halo[kHalo], y[kLaneSteps];
    load_steps(x_row, t, p.length, x_vec_ok, x);
    left_halo(x, lane, carry, halo);
#pragma unroll
    for (int i = 0; i < kLaneSteps; ++i) {
      float acc = bias;
#pragma unroll
      for (int k = 0; k < K; ++k) acc = fmaf(w[k], window_at(halo, x, i - (K - 1) + k), acc);
      y[i] = p.silu ? silu(acc) : acc;
    }
    store_steps(out_row, t, p.length, out_vec_ok, y);
  }
}

template <typename T, int K>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    conv_bwd_kernel(CausalConv1dParams p, bool x_vec_ok, bool dout_vec_ok, bool dx_vec_ok) {
  const RowIndex ix = row_index(p.batch, p.channels);
  if (!ix.valid) return;
  const int lane = threadIdx.x % 32;
  const int64_t L = p.length;
  const T* x_row = static_cast<const T*>(p.x) + ix.b * p.x_batch_stride + ix.c * p.x_channel_stride;
  const T* dout_row =
      static_cast<const T*>(p.dout) + ix.b * p.dout_batch_stride + ix.c * p.dout_channel_stride;
  T* dx_row = static_cast<T*>(p.dx) + ix.b * p.dx_batch_stride + ix.c * p.dx_channel_stride;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = load_at(p.weight, ix.c, k);
  const float bias = p.bias.data ? load_at(p.bias, ix.c) : 0.f;
  // dL/dpre at step s from x and dout at s (x's window from `halo`/`x` as in the forward).
  auto grad_pre = [&](float dout, float pre) { return p.silu ? dout * silu_grad(pre) : dout; };

  float dw[K] = {}, db = 0.f;
  float carry[kHalo] = {};
  for (int64_t t0 = 0; t0 < L; t0 += kChunk) {
    const int64_t t = t0 + lane * kLaneSteps;
    float x[kLaneSteps], halo[kHalo], g[kLaneSteps];
    load_steps(x_row, t, L, x_vec_ok, x);
    load_steps(dout_row, t, L, dout_vec_ok, g);
    left_halo(x, lane, carry, halo);
#pragma unroll
    for (int i = 0; i < kLaneSteps; ++i) {
      float pre = bias;
#pragma unroll
      for (int k = 0; k < K; ++k) pre = fmaf(w[k], window_at(halo, x, i - (K - 1) + k), pre);
      g[i] = grad_pre(g[i], pre);  // 0 beyond L, where dout loaded as 0
    }
    // dx[s] needs dL/dpre up to s + K - 1: the next lane's first K - 1, and for lane 31 the next
    // chunk's, computed here from x and dout at those steps (its x window ends in this lane's).
    float right[kHalo];
#pragma unroll
    for (int j = 0; j < kHalo; ++j) right[j] = __shfl_down_sync(kFullMask, g[j], 1);
    if (lane == 31) {
#pragma unroll
      for (int j = 0; j < K - 1; ++j) {
        const int64_t s = t + kLaneSteps + j;
        if (s >= L) {
          right[j] = 0.f;
          continue;
        }
        float pre = bias;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const int at = kLaneSteps + j - (K - 1) + k;  // index into this lane's steps
          pre = fmaf(w[k], at < kLaneSteps ? x[at] : to_float(x_row[t + at]), pre);
        }
        right[j] = grad_pre(to_float(dout_row[s]), pre);
      }
    }
    float dx[kLaneSteps];
#pragma unroll
    for (int i = 0; i < kLaneSteps; ++i) {
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int at = i + (K - 1) - k;
        acc = fmaf(w[k], at < kLaneSteps ? g[at] : right[at - kLaneSteps], acc);
      }
      dx[i] = acc;
      db += g[i];
#pragma unroll
      for (int k = 0; k < K; ++k) dw[k] = fmaf(g[i], window_at(halo, x, i - (K - 1) + k), dw[k]);
    }
    store_steps(dx_row, t, L, dx_vec_ok, dx);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
#pragma unroll
    for (int k = 0; k < K; ++k) dw[k] += __shfl_xor_sync(kFullMask, dw[k], offset);
    db += __shfl_xor_sync(kFullMask, db, offset);
  }
  if (lane == 0) {
    float* out = p.dweight_bias_partial + (ix.b * p.channels + ix.c) * (K + 1);
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = dw[k];
    out[K] = db;
  }
}

unsigned row_blocks(const CausalConv1dParams& p) {
  return static_cast<unsigned>((p.batch * p.channels + kRowsPerBlock - 1) / kRowsPerBlock);
}

struct LaunchForward {
  const CausalConv1dParams& p;
  cudaStream_t stream;
  template <typename T, int K>
  const char* operator()() const {
    const bool x_vec_ok = rows_aligned<T>(p.x, p.x_batch_stride, p.x_channel_stride);
    const bool out_vec_ok = rows_aligned<T>(p.out, p.channels * p.length, p.length);
    conv_fwd_kernel<T, K>
        <<<row_blocks(p), 32 * kRowsPerBlock, 0, stream>>>(p, x_vec_ok, out_vec_ok);
    return last_launch_error();
  }
};

struct LaunchBackward {
  const CausalConv1dParams& p;
  cudaStream_t stream;
  template <typename T, int K>
  const char* operator()() const {
    const bool x_vec_ok = rows_aligned<T>(p.x, p.x_batch_stride, p.x_channel_stride);
    const bool dout_vec_ok = rows_aligned<T>(p.dout, p.dout_batch_stride, p.dout_channel_stride);
    const bool dx_vec_ok = rows_aligned<T>(p.dx, p.dx_batch_stride, p.dx_channel_stride);
    conv_bwd_kernel<T, K>
        <<<row_blocks(p), 32 * kRowsPerBlock, 0, stream>>>(p, x_vec_ok, dout_vec_ok, dx_vec_ok);
    return last_launch_error();
  }
};

// launch.template operator()<T, K>() for the run-time element type and width.
template <typename Launch>
const char* dispatch(const CausalConv1dParams& p, const Launch& launch) {
  if (p.batch * p.channels * p.length == 0) return nullptr;
  auto by_width = [&](auto element) -> const char* {
    using T = decltype(element);
    switch (p.width) {
      case 2:
        return launch.template operator()<T, 2>();
      case 3:
        return launch.template operator()<T, 3>();
      case 4:
        return launch.template operator()<T, 4>();
      default:
        return "conv width outside 2..4";
    }
  };
  return p.x_type == ElementType::kBFloat16 ? by_width(__nv_bfloat16{}) : by_width(float{});
}

__device__ __forceinline__ float round_to(ElementType type, float v) {
  return type == ElementType::kBFloat16 ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

__global__ void conv_update_kernel(CausalConv1dUpdateParams p) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= p.batch * p.channels) return;
  const int64_t c = row % p.channels, b = row / p.channels;
  const int K = p.width;
  const int64_t base = b * p.state_batch_stride + c * p.state_channel_stride;
  float window[kMaxWidth];
  for (int k = 0; k + 1 < K; ++k) {
    window[k] = load_as_float(p.state, p.state_type, base + (k + 1) * p.state_width_stride);
  }
  // The output reads the new state, so the incoming x is rounded to the state's type first.
  window[K - 1] = round_to(p.state_type, load_at(p.x, b, c));
  float acc = p.bias.data ? load_at(p.bias, c) : 0.f;
  for (int k = 0; k < K; ++k) {
    store_from_float(p.state, p.state_type, base + k * p.state_width_stride, window[k]);
    acc = fmaf(load_at(p.weight, c, k), window[k], acc);
  }
  if (p.silu) acc = silu(acc);
  store_from_float(p.out, p.out_type, row, acc);
}

}  // namespace

const char* causal_conv1d_fwd(const CausalConv1dParams& p, void* stream) {
  return dispatch(p, LaunchForward{p, static_cast<cudaStream_t>(stream)});
}

const char* causal_conv1d_bwd(const CausalConv1dParams& p, void* stream) {
  return dispatch(p, LaunchBackward{p, static_cast<cudaStream_t>(stream)});
}

const char* causal_conv1d_update(const CausalConv1dUpdateParams& p, void* stream) {
  const int64_t rows = p.batch * p.channels;
  if (rows == 0) return nullptr;
  if (p.width < 1 || p.width > kMaxWidth) return "conv width outside 1..4";
  constexpr int kThreads = 128;
  conv_update_kernel<<<static_cast<unsigned>((rows + kThreads - 1) / kThreads), kThreads, 0,
                       static_cast<cudaStream_t>(stream)>>>(p);
  return last_launch_error();
}

}  // namespace mmlab::kernels
