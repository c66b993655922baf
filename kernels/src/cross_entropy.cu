// SPDX-License-Identifier: GPL-3.0-or-later
// One block per row, in one of two kernels.
//   Resident (rows of up to kMaxResidentVectors 16-byte vectors: GPT-2's vocabulary in bf16 and
//   in fp32): each thread loads all its vectors of the row at once, into registers (and, for the
//   longest rows, a few into shared memory), so the row is read from HBM once with all its loads
//   in flight together; the thread's max, then one exp per element, a block reduction to the
//   log-sum-exp, and the gradient is written from the registers.
//   Streaming (longer rows, or force_streaming): pass 1 reads the row keeping an online (max,
//   sum of exp) per thread, pass 2 re-reads it and rewrites it as its gradient. With 4 blocks of
//   100 KB rows on each of 132 SMs, pass 2 re-reads from HBM (the L2 holds 50 MB), and a thread
//   has one load in flight: ~2.1 TB/s on an H200.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/src/cross_entropy.h"
#include "kernels/src/element_type.cuh"
#include "kernels/src/launch_status.cuh"

namespace mmlab::kernels {

namespace {

constexpr int kStreamingThreads = 512;
constexpr float kLog2e = 1.4426950408889634f;

/// Word i of a 16-byte vector; i is a constant once unrolled, so this names a register.
template <class U>
__device__ __forceinline__ auto& word(U& r, int i) {
  return i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w;
}

/// A 16-byte vector of the row as registers: its elements as fp32, the gradient packed back.
template <typename T>
struct Vec;
// get() and get_again() give the same value by different instructions: the compiler would
// otherwise keep the row converted to fp32 from the sum to the gradient, twice the registers.
template <>
struct Vec<__nv_bfloat16> {
  static constexpr int kWidth = 8;
  static constexpr uint32_t kNegInfWord = 0xff80ff80u;  // two bf16 -inf
  static __device__ __forceinline__ float get(const uint4& r, int k) {
    const uint32_t w = word(r, k / 2);
    return __uint_as_float(k % 2 ? w & 0xffff0000u : w << 16);
  }
  static __device__ __forceinline__ float get_again(const uint4& r, int k) {
    return __uint_as_float(__byte_perm(word(r, k / 2), 0u, k % 2 ? 0x3244u : 0x1044u));
  }
  // Exact in bf16, and half the instructions of converting first.
  static __device__ __forceinline__ float max_of(const uint4& r) {
    const __nv_bfloat162 m =
        __hmax2(__hmax2(as_pair(r.x), as_pair(r.y)), __hmax2(as_pair(r.z), as_pair(r.w)));
    return fmaxf(__low2float(m), __high2float(m));
  }
  static __device__ __forceinline__ void set_neg_inf(uint4& r, int k) {
    uint32_t& w = word(r, k / 2);
    w = k % 2 ? (w & 0x0000ffffu) | 0xff800000u : (w & 0xffff0000u) | 0x0000ff80u;
  }
  static __device__ __forceinline__ uint4 pack(const float (&g)[kWidth]) {
    uint4 r;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __nv_bfloat162 two = __floats2bfloat162_rn(g[2 * i], g[2 * i + 1]);
      uint32_t u;
      memcpy(&u, &two, 4);
      word(r, i) = u;
    }
    return r;
  }
  static __device__ __forceinline__ __nv_bfloat162 as_pair(uint32_t w) {
    __nv_bfloat162 p;
    memcpy(&p, &w, 4);
    return p;
  }
};
template <>
struct Vec<float> {
  static constexpr int kWidth = 4;
  static constexpr uint32_t kNegInfWord = 0xff800000u;
  static __device__ __forceinline__ float get(const uint4& r, int k) {
    return __uint_as_float(word(r, k));
  }
  static __device__ __forceinline__ float get_again(const uint4& r, int k) { return get(r, k); }
  static __device__ __forceinline__ float max_of(const uint4& r) {
    return fmaxf(fmaxf(get(r, 0), get(r, 1)), fmaxf(get(r, 2), get(r, 3)));
  }
  static __device__ __forceinline__ void set_neg_inf(uint4& r, int k) { word(r, k) = kNegInfWord; }
  static __device__ __forceinline__ uint4 pack(const float (&g)[kWidth]) {
    return make_uint4(__float_as_uint(g[0]), __float_as_uint(g[1]), __float_as_uint(g[2]),
                      __float_as_uint(g[3]));
  }
};

/// 2^x on the SFU (what __expf uses), so exp(x - m) is one FMA and one MUFU.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// blockIdx.x read again: the row's address is recomputed after the reduction instead of taking
/// two registers beside the row through it.
__device__ __forceinline__ unsigned ctaid_x() {
  unsigned v;
  asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(v));
  return v;
}

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

__device__ __forceinline__ void warp_merge(float& m, float& s) {
  for (int off = 16; off > 0; off /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
    merge(m, s, m2, s2);
  }
}

/// The row's log-sum-exp from every thread's (m, s), returned to all threads. Its barriers also
/// order any read of the row made before it against the gradient written after it.
template <int kThreads>
__device__ __forceinline__ float block_lse(float m, float s) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "one warp reduces the warps' states");
  constexpr int kWarps = kThreads / 32;
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  __shared__ float row_lse;
  warp_merge(m, s);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < kWarps ? warp_m[lane] : -INFINITY;
    s = lane < kWarps ? warp_s[lane] : 0.f;
    warp_merge(m, s);
    if (lane == 0) row_lse = m + logf(s);
  }
  __syncthreads();
  return row_lse;
}

/// The row's log-sum-exp from every thread's (m, s) in two plain reductions, the block's max and
/// then the sum rescaled to it: fewer live registers than merging (m, s) pairs, which the
/// register-resident kernel needs beside its row.
template <int kThreads>
__device__ __forceinline__ float block_lse_two_step(float m, float s) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float warp_v[kWarps];
  __shared__ float row_max, row_lse;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float v = m;
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  if (lane == 0) warp_v[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? warp_v[lane] : -INFINITY;
    for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (lane == 0) row_max = v;
  }
  __syncthreads();
  const float hi = row_max;
  v = m == -INFINITY ? 0.f : s * __expf(m - hi);
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  __syncthreads();  // every thread has read row_max's warp_v before it is reused
  if (lane == 0) warp_v[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? warp_v[lane] : 0.f;
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) row_lse = hi + logf(v);
  }
  __syncthreads();
  return row_lse;
}

/// Starts a 16-byte copy global -> shared that takes no register while in flight.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;" ::: "memory");
}

/// Columns >= vocab of a vector whose first `rem` columns are below it become -inf.
template <typename T>
__device__ __forceinline__ void mask_tail(uint4& q, int rem) {
#pragma unroll
  for (int k = 1; k < Vec<T>::kWidth; ++k) {
    if (k >= rem) Vec<T>::set_neg_inf(q, k);
  }
}

// Thread tid holds vectors i * kThreads + tid of the row, i < kRegVpt in registers and the next
// kSmemVpt in its own slots of shared memory (where the registers would spill); rows of up to
// (kRegVpt + kSmemVpt) * kThreads vectors with a column below vocab.
template <typename T, int kThreads, int kRegVpt, int kSmemVpt, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    cross_entropy_rows_resident_kernel(T* __restrict__ logits, int vocab, int64_t row_stride,
                                       const int64_t* __restrict__ targets,
                                       float* __restrict__ losses, float grad_scale) {
  using V = Vec<T>;
  constexpr int W = V::kWidth, kVpt = kRegVpt + kSmemVpt;
  const uint4 neg_inf = make_uint4(V::kNegInfWord, V::kNegInfWord, V::kNegInfWord, V::kNegInfWord);
  const int64_t row = blockIdx.x;
  const uint4* xv = reinterpret_cast<const uint4*>(logits + row * row_stride);
  const int n_vec = (vocab + W - 1) / W;               // vectors holding a column < vocab
  const int n_all = static_cast<int>(row_stride / W);  // with the padding vectors
  const int tid = threadIdx.x;
  extern __shared__ uint4 staged[];  // (kSmemVpt, kThreads)

  // All loads first, all in flight together; columns >= vocab become -inf, so the max and the
  // sum below need no per-element mask (exp2(-inf) = 0).
  uint4 r[kRegVpt];
#pragma unroll
  for (int i = 0; i < kRegVpt; ++i) {
    const int v = i * kThreads + tid;
    r[i] = v < n_vec ? xv[v] : neg_inf;
  }
#pragma unroll
  for (int j = 0; j < kSmemVpt; ++j) {
    const int v = (kRegVpt + j) * kThreads + tid;
    if (v < n_vec) {
      cp_async_16(&staged[j * kThreads + tid], &xv[v]);
    } else {
      staged[j * kThreads + tid] = neg_inf;
    }
  }
  // The target waits in shared memory rather than in a register beside the row.
  __shared__ int row_target;
  if (tid == 0) {
    const int64_t target = targets[row];
    row_target = target >= 0 && target < vocab ? static_cast<int>(target) : -1;
  }
  // Only the vector holding column vocab - 1 is partly past it.
#pragma unroll
  for (int i = 0; i < kRegVpt; ++i) {
    const int rem = vocab - (i * kThreads + tid) * W;
    if (rem > 0 && rem < W) mask_tail<T>(r[i], rem);
  }
  if (kSmemVpt > 0) cp_async_wait_all();
#pragma unroll
  for (int j = 0; j < kSmemVpt; ++j) {
    const int rem = vocab - ((kRegVpt + j) * kThreads + tid) * W;
    if (rem > 0 && rem < W) mask_tail<T>(staged[j * kThreads + tid], rem);
  }
  // Vector i of the thread; i is a constant once unrolled.
  auto vec = [&](int i) -> uint4 {
    return i < kRegVpt ? r[i < kRegVpt ? i : 0] : staged[(i - kRegVpt) * kThreads + tid];
  };

  float m = -INFINITY;
#pragma unroll
  for (int i = 0; i < kVpt; ++i) m = fmaxf(m, V::max_of(vec(i)));
  // A thread with no column of the row keeps (-inf, 0); an offset of 0 keeps its exps at 0
  // instead of exp(-inf + inf).
  const float m_log2 = (m == -INFINITY ? 0.f : m) * kLog2e;
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < kVpt; ++i) {
    const uint4 q = vec(i);
#pragma unroll
    for (int k = 0; k < W; ++k) s += exp2_approx(fmaf(V::get(q, k), kLog2e, -m_log2));
  }

  const float lse = block_lse_two_step<kThreads>(m, s);  // its barriers publish row_target
  const int t = row_target;
  if (t < 0 && tid == 0) losses[row] = NAN;
  const float lse_log2 = lse * kLog2e;
  // Recomputed rather than kept in two registers beside the row through the reduction.
  uint4* out = reinterpret_cast<uint4*>(logits + static_cast<int64_t>(ctaid_x()) * row_stride);
#pragma unroll
  for (int i = 0; i < kVpt; ++i) {
    const int v = i * kThreads + tid;
    const uint4 q = vec(i);
    const int tk = t - v * W;  // the target's place in vector i, if it is there
    // Its owner writes the loss from its registers.
    if (static_cast<unsigned>(tk) < static_cast<unsigned>(W)) {
      float xt = 0.f;
#pragma unroll
      for (int k = 0; k < W; ++k) xt = k == tk ? V::get_again(q, k) : xt;
      losses[row] = lse - xt;
    }
    if (grad_scale == 0.f || v >= n_all) continue;
    float g[W];
#pragma unroll
    for (int k = 0; k < W; ++k) g[k] = exp2_approx(fmaf(V::get_again(q, k), kLog2e, -lse_log2));
    // The target and the row's end fall in one vector each: branches, not a test per element.
    if (static_cast<unsigned>(tk) < static_cast<unsigned>(W)) {
#pragma unroll
      for (int k = 0; k < W; ++k) {
        if (k == tk) g[k] -= 1.f;
      }
    }
#pragma unroll
    for (int k = 0; k < W; ++k) g[k] *= grad_scale;
    // Padding columns get exactly 0, whatever lse is (an inf or NaN lse makes exp2 NaN).
    const int rem = vocab - v * W;
    if (rem < W) {
#pragma unroll
      for (int k = 0; k < W; ++k) {
        if (k >= rem) g[k] = 0.f;
      }
    }
    out[v] = V::pack(g);
  }
  // Padding vectors past the ones the threads hold.
  if (grad_scale == 0.f) return;
  for (int v = kVpt * kThreads + tid; v < n_all; v += kThreads) out[v] = make_uint4(0, 0, 0, 0);
}

template <typename T>
__global__ void __launch_bounds__(kStreamingThreads)
    cross_entropy_rows_streaming_kernel(T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                                        const int64_t* __restrict__ targets,
                                        float* __restrict__ losses, float grad_scale) {
  constexpr int W = Vec<T>::kWidth;
  const int64_t row = blockIdx.x;
  T* x = logits + row * row_stride;
  const int64_t n_vec = (vocab + W - 1) / W;
  const uint4* xv = reinterpret_cast<const uint4*>(x);

  const int64_t target = targets[row];
  const bool target_ok = target >= 0 && target < vocab;
  float x_target = 0.f;
  if (threadIdx.x == 0 && target_ok) x_target = to_float(x[target]);

  float m = -INFINITY, s = 0.f;
  for (int64_t v = threadIdx.x; v < n_vec; v += kStreamingThreads) {
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
  const float lse = block_lse<kStreamingThreads>(m, s);
  if (threadIdx.x == 0) losses[row] = target_ok ? lse - x_target : NAN;
  if (grad_scale == 0.f) return;

  uint4* xw = reinterpret_cast<uint4*>(x);
  const int64_t n_all = row_stride / W;
  for (int64_t v = threadIdx.x; v < n_all; v += kStreamingThreads) {
    uint4 raw = v < n_vec ? xw[v] : make_uint4(0, 0, 0, 0);
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

template <typename T, int kThreads, int kRegVpt, int kSmemVpt, int kMinBlocks>
void launch_resident(const CrossEntropyRowsParams& p, cudaStream_t s) {
  auto kernel = cross_entropy_rows_resident_kernel<T, kThreads, kRegVpt, kSmemVpt, kMinBlocks>;
  constexpr int kSmemBytes = kSmemVpt * kThreads * 16;
  // Past 48 KB, with a margin for the reduction's static shared memory, it takes the opt-in.
  if (kSmemBytes + 1024 > 48 * 1024) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  }
  kernel<<<static_cast<unsigned>(p.rows), kThreads, kSmemBytes, s>>>(
      static_cast<T*>(p.logits), static_cast<int>(p.vocab), p.row_stride, p.targets, p.losses,
      p.grad_scale);
}

// The smallest instantiation whose threads x vectors cover the row's columns below vocab, so
// few threads idle: 128 threads up to 512 vectors (4,096 bf16 columns), then wider blocks.
// __launch_bounds__ caps them all at 64 registers a thread, none spilling (nvcc 13.0, sm_90a);
// those that keep part of the row in shared memory do so where more registers would spill. Two
// rows on an SM (kMinBlocks 2) overlap one's loads with the other's exps and stores: on an H200,
// 65,536 rows of 32,000 bf16 columns took 2.04 ms with 512 x 8 against 2.36 ms with 1024 x 4, and
// GPT-2's 50,257 (6,283 vectors) 3.22 ms with 512 x (7 + 6) against 3.39 ms with 1024 x 7 (a
// device-to-device copy of the same bytes: 3.11 ms). 512 x (7 + 6) spills in fp32, so fp32 rows
// of that length take 1024 x 7; GPT-2's fp32 rows (12,565 vectors) take 1024 x (11 + 2).
constexpr int64_t kMaxResidentVectors = 1024 * 13;

template <typename T>
void launch(const CrossEntropyRowsParams& p, cudaStream_t s) {
  const int64_t n = (p.vocab + Vec<T>::kWidth - 1) / Vec<T>::kWidth;
  // The resident kernel counts a row's vectors in int.
  const bool fits = n <= kMaxResidentVectors && p.row_stride / Vec<T>::kWidth <= INT32_MAX;
  if (p.force_streaming || !fits) {
    cross_entropy_rows_streaming_kernel<T>
        <<<static_cast<unsigned>(p.rows), kStreamingThreads, 0, s>>>(
            static_cast<T*>(p.logits), p.vocab, p.row_stride, p.targets, p.losses, p.grad_scale);
  } else if (n <= 128) {
    launch_resident<T, 128, 1, 0, 8>(p, s);
  } else if (n <= 256) {
    launch_resident<T, 128, 2, 0, 8>(p, s);
  } else if (n <= 512) {
    launch_resident<T, 128, 4, 0, 8>(p, s);
  } else if (n <= 1024) {
    launch_resident<T, 256, 4, 0, 4>(p, s);
  } else if (n <= 2048) {
    launch_resident<T, 512, 4, 0, 2>(p, s);
  } else if (n <= 4096) {
    launch_resident<T, 512, 8, 0, 2>(p, s);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (n <= 512 * 13) {
      launch_resident<T, 512, 7, 6, 2>(p, s);
    } else {
      launch_resident<T, 1024, 11, 2, 1>(p, s);
    }
  } else {
    if (n <= 1024 * 7) {
      launch_resident<T, 1024, 7, 0, 1>(p, s);
    } else {
      launch_resident<T, 1024, 11, 2, 1>(p, s);
    }
  }
}

}  // namespace

const char* cross_entropy_rows(const CrossEntropyRowsParams& p, void* stream) {
  if (p.rows == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.type == ElementType::kBFloat16) {
    launch<__nv_bfloat16>(p, s);
  } else {
    launch<float>(p, s);
  }
  return last_launch_error();
}

}  // namespace mmlab::kernels
