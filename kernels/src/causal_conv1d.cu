// SPDX-License-Identifier: GPL-3.0-or-later
// Causal depthwise conv1d kernels (see causal_conv1d.h for the maths and shapes).
//
// Forward and backward: one block per (batch, channel, length tile); the tile (with its K-1
// halo) is staged in shared memory in fp32, loaded with 16-byte vector loads when the row is
// aligned, so every x element is read from global memory about once. Each thread produces
// kElemsPerThread outputs at a stride of blockDim (conflict-free shared reads, coalesced writes).
// The backward recomputes the pre-activation for SiLU from x instead of saving it, and writes one
// row of (dweight, dbias) partial sums per block: a deterministic reduction without atomics.
// The decode step is one thread per (batch, channel).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/src/causal_conv1d.h"
#include "kernels/src/element_type.cuh"

namespace mmlab::kernels {

namespace {

constexpr int kMaxWidth = 4;
constexpr int kElemsPerThread = 4;
constexpr int kMaxThreads = 128;
// The tile body starts 4 floats into its shared array so that it is 16-byte aligned and the
// left halo (K-1 <= 3 elements) fits in front of it.
constexpr int kBodyOffset = 4;
constexpr int kRightPad = 4;  // right halo (K-1 <= 3) rounded up to keep the next array aligned

/// Short sequences get smaller blocks so that few threads idle.
int tile_threads(int64_t length) {
  return length <= 128 ? 32 : length <= 256 ? 64 : kMaxThreads;
}

int64_t tiles_for(int64_t length, int threads) {
  const int64_t tile = static_cast<int64_t>(threads) * kElemsPerThread;
  return (length + tile - 1) / tile;
}

template <typename T>
bool rows_aligned(const void* base, int64_t batch_stride, int64_t channel_stride) {
  const auto bytes = [](int64_t stride) { return stride * static_cast<int64_t>(sizeof(T)); };
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && bytes(batch_stride) % 16 == 0 &&
         bytes(channel_stride) % 16 == 0;
}

/// body[i] = row[t0 + i] in fp32 for i in [-left, tile + right), 0 outside [0, length).
/// `body` is 16-byte aligned; `vec_ok` says `row` is too.
template <typename T>
__device__ void load_tile(float* body, const T* row, int64_t t0, int tile, int left, int right,
                          int64_t length, bool vec_ok) {
  for (int i = threadIdx.x; i < left + right; i += blockDim.x) {
    const int off = i < left ? i - left : tile + (i - left);
    const int64_t t = t0 + off;
    body[off] = (t >= 0 && t < length) ? to_float(row[t]) : 0.f;
  }
  constexpr int kVec = 16 / sizeof(T);
  if (vec_ok) {
    for (int v = threadIdx.x; v < tile / kVec; v += blockDim.x) {
      const int64_t t = t0 + static_cast<int64_t>(v) * kVec;
      float vals[kVec];
      if (t + kVec <= length) {
        const uint4 raw = *reinterpret_cast<const uint4*>(row + t);
        const T* elems = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) vals[j] = to_float(elems[j]);
      } else {
#pragma unroll
        for (int j = 0; j < kVec; ++j) vals[j] = t + j < length ? to_float(row[t + j]) : 0.f;
      }
      float4* dst = reinterpret_cast<float4*>(body + v * kVec);
#pragma unroll
      for (int j = 0; j < kVec / 4; ++j) {
        dst[j] = make_float4(vals[4 * j], vals[4 * j + 1], vals[4 * j + 2], vals[4 * j + 3]);
      }
    }
  } else {
    for (int i = threadIdx.x; i < tile; i += blockDim.x) {
      const int64_t t = t0 + i;
      body[i] = t < length ? to_float(row[t]) : 0.f;
    }
  }
}

struct TileIndex {
  int64_t b, c, tile_index, t0;
};

__device__ TileIndex tile_index(int64_t tiles, int64_t channels, int tile) {
  int64_t block = blockIdx.x;
  TileIndex ix;
  ix.tile_index = block % tiles;
  block /= tiles;
  ix.c = block % channels;
  ix.b = block / channels;
  ix.t0 = ix.tile_index * tile;
  return ix;
}

template <typename T, int K>
__global__ void __launch_bounds__(kMaxThreads)
    conv_fwd_kernel(CausalConv1dParams p, int64_t tiles, bool vec_ok) {
  extern __shared__ float4 smem[];
  float* xs = reinterpret_cast<float*>(smem) + kBodyOffset;  // (tile) + left halo
  const int tile = blockDim.x * kElemsPerThread;
  const TileIndex ix = tile_index(tiles, p.channels, tile);
  const T* x_row = static_cast<const T*>(p.x) + ix.b * p.x_batch_stride + ix.c * p.x_channel_stride;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = load_at(p.weight, ix.c, k);
  const float bias = p.bias.data ? load_at(p.bias, ix.c) : 0.f;
  load_tile(xs, x_row, ix.t0, tile, K - 1, 0, p.length, vec_ok);
  __syncthreads();
  T* out_row = static_cast<T*>(p.out) + (ix.b * p.channels + ix.c) * p.length;
#pragma unroll
  for (int e = 0; e < kElemsPerThread; ++e) {
    const int i = threadIdx.x + e * blockDim.x;
    const int64_t t = ix.t0 + i;
    if (t >= p.length) break;
    float acc = bias;
#pragma unroll
    for (int k = 0; k < K; ++k) acc = fmaf(w[k], xs[i - (K - 1) + k], acc);
    if (p.silu) acc = silu(acc);
    out_row[t] = from_float<T>(acc);
  }
}

template <typename T, int K>
__global__ void __launch_bounds__(kMaxThreads)
    conv_bwd_kernel(CausalConv1dParams p, int64_t tiles, bool x_vec_ok, bool dout_vec_ok) {
  extern __shared__ float4 smem[];
  const int tile = blockDim.x * kElemsPerThread;
  const int span = kBodyOffset + tile + kRightPad;
  float* xs = reinterpret_cast<float*>(smem) + kBodyOffset;         // x, both halos
  float* gs = reinterpret_cast<float*>(smem) + span + kBodyOffset;  // dout, then dL/dpre
  __shared__ float partial[kMaxThreads / 32][K + 1];

  const TileIndex ix = tile_index(tiles, p.channels, tile);
  const int64_t L = p.length;
  const T* x_row = static_cast<const T*>(p.x) + ix.b * p.x_batch_stride + ix.c * p.x_channel_stride;
  const T* dout_row =
      static_cast<const T*>(p.dout) + ix.b * p.dout_batch_stride + ix.c * p.dout_channel_stride;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = load_at(p.weight, ix.c, k);
  const float bias = p.bias.data ? load_at(p.bias, ix.c) : 0.f;

  // dx[t] needs dL/dpre up to t + K - 1, which needs x up to t + K - 1: right halos of K - 1.
  load_tile(xs, x_row, ix.t0, tile, K - 1, K - 1, L, x_vec_ok);
  load_tile(gs, dout_row, ix.t0, tile, 0, K - 1, L, dout_vec_ok);
  __syncthreads();
  if (p.silu) {
    for (int i = threadIdx.x; i < tile + K - 1; i += blockDim.x) {
      if (ix.t0 + i >= L) break;
      float pre = bias;
#pragma unroll
      for (int k = 0; k < K; ++k) pre = fmaf(w[k], xs[i - (K - 1) + k], pre);
      const float s = 1.f / (1.f + expf(-pre));
      gs[i] *= s * (1.f + pre * (1.f - s));
    }
    __syncthreads();
  }

  float dw[K];
#pragma unroll
  for (int k = 0; k < K; ++k) dw[k] = 0.f;
  float db = 0.f;
  T* dx_row = static_cast<T*>(p.dx) + (ix.b * p.channels + ix.c) * L;
#pragma unroll
  for (int e = 0; e < kElemsPerThread; ++e) {
    const int i = threadIdx.x + e * blockDim.x;
    const int64_t t = ix.t0 + i;
    if (t >= L) break;
    float acc = 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k) acc = fmaf(w[k], gs[i + (K - 1) - k], acc);
    dx_row[t] = from_float<T>(acc);
    const float g = gs[i];
    db += g;
#pragma unroll
    for (int k = 0; k < K; ++k) dw[k] = fmaf(g, xs[i - (K - 1) + k], dw[k]);
  }

  // Block sums of dw and db: warp shuffles, then one row per warp in shared memory.
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
#pragma unroll
    for (int k = 0; k < K; ++k) dw[k] += __shfl_xor_sync(0xffffffffu, dw[k], offset);
    db += __shfl_xor_sync(0xffffffffu, db, offset);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) partial[warp][k] = dw[k];
    partial[warp][K] = db;
  }
  __syncthreads();
  if (threadIdx.x <= K) {
    float sum = 0.f;
    for (int w_i = 0; w_i < static_cast<int>(blockDim.x / 32); ++w_i)
      sum += partial[w_i][threadIdx.x];
    float* out =
        p.dweight_bias_partial + ((ix.b * tiles + ix.tile_index) * p.channels + ix.c) * (K + 1);
    out[threadIdx.x] = sum;
  }
}

template <typename T, int K>
const char* launch_fwd(const CausalConv1dParams& p, cudaStream_t stream) {
  const int threads = tile_threads(p.length);
  const int64_t tiles = tiles_for(p.length, threads);
  const size_t smem = sizeof(float) * (kBodyOffset + threads * kElemsPerThread);
  const bool vec_ok = rows_aligned<T>(p.x, p.x_batch_stride, p.x_channel_stride);
  const int64_t blocks = p.batch * p.channels * tiles;
  conv_fwd_kernel<T, K><<<static_cast<unsigned>(blocks), threads, smem, stream>>>(p, tiles, vec_ok);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename T, int K>
const char* launch_bwd(const CausalConv1dParams& p, cudaStream_t stream) {
  const int threads = tile_threads(p.length);
  const int64_t tiles = tiles_for(p.length, threads);
  const size_t smem = 2 * sizeof(float) * (kBodyOffset + threads * kElemsPerThread + kRightPad);
  const bool x_vec_ok = rows_aligned<T>(p.x, p.x_batch_stride, p.x_channel_stride);
  const bool dout_vec_ok = rows_aligned<T>(p.dout, p.dout_batch_stride, p.dout_channel_stride);
  const int64_t blocks = p.batch * p.channels * tiles;
  conv_bwd_kernel<T, K>
      <<<static_cast<unsigned>(blocks), threads, smem, stream>>>(p, tiles, x_vec_ok, dout_vec_ok);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename T>
const char* dispatch_width_fwd(const CausalConv1dParams& p, cudaStream_t s) {
  switch (p.width) {
    case 2:
      return launch_fwd<T, 2>(p, s);
    case 3:
      return launch_fwd<T, 3>(p, s);
    case 4:
      return launch_fwd<T, 4>(p, s);
    default:
      return "conv width outside 2..4";
  }
}

template <typename T>
const char* dispatch_width_bwd(const CausalConv1dParams& p, cudaStream_t s) {
  switch (p.width) {
    case 2:
      return launch_bwd<T, 2>(p, s);
    case 3:
      return launch_bwd<T, 3>(p, s);
    case 4:
      return launch_bwd<T, 4>(p, s);
    default:
      return "conv width outside 2..4";
  }
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

int64_t causal_conv1d_bwd_tiles(int64_t length) {
  return tiles_for(length, tile_threads(length));
}

const char* causal_conv1d_fwd(const CausalConv1dParams& p, void* stream) {
  if (p.batch * p.channels * p.length == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return p.x_type == ElementType::kBFloat16 ? dispatch_width_fwd<__nv_bfloat16>(p, s)
                                            : dispatch_width_fwd<float>(p, s);
}

const char* causal_conv1d_bwd(const CausalConv1dParams& p, void* stream) {
  if (p.batch * p.channels * p.length == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return p.x_type == ElementType::kBFloat16 ? dispatch_width_bwd<__nv_bfloat16>(p, s)
                                            : dispatch_width_bwd<float>(p, s);
}

const char* causal_conv1d_update(const CausalConv1dUpdateParams& p, void* stream) {
  const int64_t rows = p.batch * p.channels;
  if (rows == 0) return nullptr;
  if (p.width < 1 || p.width > kMaxWidth) return "conv width outside 1..4";
  constexpr int kThreads = 128;
  conv_update_kernel<<<static_cast<unsigned>((rows + kThreads - 1) / kThreads), kThreads, 0,
                       static_cast<cudaStream_t>(stream)>>>(p);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace mmlab::kernels
