// SPDX-License-Identifier: GPL-3.0-or-later
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/src/attention_heads.h"
#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"

namespace mmlab::kernels {

namespace {

// A block per token (b, l): warp w takes the token's rows (part, h) w, w + kWarps, ..., its
// lanes the row's pairs. Sizes divide once per thread, not per element: with a thread per pair
// and 64-bit index arithmetic the kernel ran at a fifth of the card's bandwidth.
constexpr int kWarps = 8;

struct TokenPlace {
  int64_t b, l;
};

__device__ __forceinline__ TokenPlace token_place(const AttentionHeadsParams& p) {
  return {static_cast<int64_t>(blockIdx.x) / p.length, static_cast<int64_t>(blockIdx.x) % p.length};
}

template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    attention_heads_forward_kernel(AttentionHeadsParams p) {
  const TokenPlace at = token_place(p);
  const int half = static_cast<int>(p.head_dim / 2), H = static_cast<int>(p.heads);
  const T* token = static_cast<const T*>(p.qkv) + at.b * p.qkv_stride[0] + at.l * p.qkv_stride[1];
  const int64_t out_row = (at.b * p.length + at.l) * p.heads;  // (b, l, 0) of q, k, v
  const float* cos = p.cos + at.l * half;
  const float* sin = p.sin + at.l * half;
  for (int row = threadIdx.y; row < 3 * H; row += kWarps) {
    const int part = row / H, h = row % H;
    const T* src = token + part * p.qkv_stride[2] + h * p.qkv_stride[3];
    T* dst = static_cast<T*>(p.out[part]) + (out_row + h) * p.head_dim;
    for (int j = threadIdx.x; j < half; j += 32) {
      if (part == 2) {
        dst[j] = src[j];
        dst[j + half] = src[j + half];
        continue;
      }
      const float x1 = to_float(src[j]), x2 = to_float(src[j + half]);
      const float c = cos[j], s = sin[j];
      dst[j] = from_float<T>(x1 * c - x2 * s);
      dst[j + half] = from_float<T>(x2 * c + x1 * s);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    attention_heads_backward_kernel(AttentionHeadsParams p) {
  const TokenPlace at = token_place(p);
  const int half = static_cast<int>(p.head_dim / 2), H = static_cast<int>(p.heads);
  T* token = static_cast<T*>(p.dqkv) + (at.b * p.length + at.l) * 3 * p.heads * p.head_dim;
  const float* cos = p.cos + at.l * half;
  const float* sin = p.sin + at.l * half;
  for (int row = threadIdx.y; row < 3 * H; row += kWarps) {
    const int part = row / H, h = row % H;
    T* dst = token + static_cast<int64_t>(row) * p.head_dim;
    const T* grad = static_cast<const T*>(p.grad[part]);
    const int64_t* st = p.grad_stride[part];
    const T* src = grad != nullptr ? grad + at.b * st[0] + at.l * st[1] + h * st[2] : nullptr;
    for (int j = threadIdx.x; j < half; j += 32) {
      const float g1 = src != nullptr ? to_float(src[j]) : 0.f;
      const float g2 = src != nullptr ? to_float(src[j + half]) : 0.f;
      if (part == 2) {
        dst[j] = from_float<T>(g1);
        dst[j + half] = from_float<T>(g2);
        continue;
      }
      // The transpose of the rotation: (g1 cos + g2 sin, g2 cos - g1 sin).
      const float c = cos[j], s = sin[j];
      dst[j] = from_float<T>(g1 * c + g2 * s);
      dst[j + half] = from_float<T>(g2 * c - g1 * s);
    }
  }
}

template <template <typename> class Kernel>
const char* launch(const AttentionHeadsParams& p, void* stream_ptr) {
  if (p.batch * p.length * p.heads * p.head_dim == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  const auto blocks = static_cast<unsigned>(p.batch * p.length);  // one per token
  if (p.type == ElementType::kBFloat16) {
    Kernel<__nv_bfloat16>::launch(blocks, stream, p);
  } else {
    Kernel<float>::launch(blocks, stream, p);
  }
  return last_launch_error();
}

template <typename T>
struct Forward {
  static void launch(unsigned blocks, cudaStream_t stream, const AttentionHeadsParams& p) {
    attention_heads_forward_kernel<T><<<blocks, dim3(32, kWarps), 0, stream>>>(p);
  }
};

template <typename T>
struct Backward {
  static void launch(unsigned blocks, cudaStream_t stream, const AttentionHeadsParams& p) {
    attention_heads_backward_kernel<T><<<blocks, dim3(32, kWarps), 0, stream>>>(p);
  }
};

}  // namespace

const char* attention_heads_forward(const AttentionHeadsParams& p, void* stream) {
  return launch<Forward>(p, stream);
}

const char* attention_heads_backward(const AttentionHeadsParams& p, void* stream) {
  return launch<Backward>(p, stream);
}

}  // namespace mmlab::kernels
