// SPDX-License-Identifier: GPL-3.0-or-later
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/src/attention_heads.h"
#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"

namespace mmlab::kernels {

namespace {

constexpr int kThreads = 256;

// Where pair `idx` of the projection's token-major order lies: (b, l, part, h) and pair j.
struct PairPlace {
  int64_t b, l, part, h, j;
};

__device__ __forceinline__ PairPlace pair_place(const AttentionHeadsParams& p, int64_t idx) {
  const int64_t half = p.head_dim / 2;
  PairPlace at;
  at.j = idx % half;
  int64_t r = idx / half;
  at.h = r % p.heads;
  r /= p.heads;
  at.part = r % 3;
  r /= 3;
  at.l = r % p.length;
  at.b = r / p.length;
  return at;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_heads_forward_kernel(AttentionHeadsParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t half = p.head_dim / 2;
  if (idx >= p.batch * p.length * 3 * p.heads * half) return;
  const PairPlace at = pair_place(p, idx);
  const T* src = static_cast<const T*>(p.qkv) + at.b * p.qkv_stride[0] + at.l * p.qkv_stride[1] +
                 at.part * p.qkv_stride[2] + at.h * p.qkv_stride[3];
  T* dst =
      static_cast<T*>(p.out[at.part]) + ((at.b * p.length + at.l) * p.heads + at.h) * p.head_dim;
  const float x1 = to_float(src[at.j]), x2 = to_float(src[at.j + half]);
  if (at.part == 2) {
    dst[at.j] = src[at.j];
    dst[at.j + half] = src[at.j + half];
    return;
  }
  const float c = p.cos[at.l * half + at.j], s = p.sin[at.l * half + at.j];
  dst[at.j] = from_float<T>(x1 * c - x2 * s);
  dst[at.j + half] = from_float<T>(x2 * c + x1 * s);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_heads_backward_kernel(AttentionHeadsParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t half = p.head_dim / 2;
  if (idx >= p.batch * p.length * 3 * p.heads * half) return;
  const PairPlace at = pair_place(p, idx);
  T* dst = static_cast<T*>(p.dqkv) +
           (((at.b * p.length + at.l) * 3 + at.part) * p.heads + at.h) * p.head_dim;
  float g1 = 0.f, g2 = 0.f;
  if (const T* grad = static_cast<const T*>(p.grad[at.part])) {
    const int64_t* st = p.grad_stride[at.part];
    const T* row = grad + at.b * st[0] + at.l * st[1] + at.h * st[2];
    g1 = to_float(row[at.j]);
    g2 = to_float(row[at.j + half]);
  }
  if (at.part == 2) {
    dst[at.j] = from_float<T>(g1);
    dst[at.j + half] = from_float<T>(g2);
    return;
  }
  // The transpose of the rotation: (g1 cos + g2 sin, g2 cos - g1 sin).
  const float c = p.cos[at.l * half + at.j], s = p.sin[at.l * half + at.j];
  dst[at.j] = from_float<T>(g1 * c + g2 * s);
  dst[at.j + half] = from_float<T>(g2 * c - g1 * s);
}

unsigned blocks_for(const AttentionHeadsParams& p) {
  const int64_t pairs = p.batch * p.length * 3 * p.heads * (p.head_dim / 2);
  return static_cast<unsigned>((pairs + kThreads - 1) / kThreads);
}

template <template <typename> class Kernel>
const char* launch(const AttentionHeadsParams& p, void* stream_ptr) {
  if (p.batch * p.length * p.heads * p.head_dim == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  if (p.type == ElementType::kBFloat16) {
    Kernel<__nv_bfloat16>::launch(blocks_for(p), stream, p);
  } else {
    Kernel<float>::launch(blocks_for(p), stream, p);
  }
  return last_launch_error();
}

template <typename T>
struct Forward {
  static void launch(unsigned blocks, cudaStream_t stream, const AttentionHeadsParams& p) {
    attention_heads_forward_kernel<T><<<blocks, kThreads, 0, stream>>>(p);
  }
};

template <typename T>
struct Backward {
  static void launch(unsigned blocks, cudaStream_t stream, const AttentionHeadsParams& p) {
    attention_heads_backward_kernel<T><<<blocks, kThreads, 0, stream>>>(p);
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
