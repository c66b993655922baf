// SPDX-License-Identifier: GPL-3.0-or-later
// Device-side loads and stores for ElementType, converting to and from fp32.
#pragma once

#include <cuda_bf16.h>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

/// element i of `data`, whose type is only known at run time (a uniform branch per warp).
__device__ __forceinline__ float load_as_float(const void* data, ElementType type, int64_t i) {
  return type == ElementType::kBFloat16
             ? __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i])
             : static_cast<const float*>(data)[i];
}

__device__ __forceinline__ void store_from_float(void* data, ElementType type, int64_t i, float v) {
  if (type == ElementType::kBFloat16) {
    static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(v);
  } else {
    static_cast<float*>(data)[i] = v;
  }
}

__device__ __forceinline__ float load_at(const StridedInput& in, int64_t i0, int64_t i1 = 0) {
  return load_as_float(in.data, in.type, i0 * in.stride0 + i1 * in.stride1);
}

__device__ __forceinline__ float silu(float v) {
  return v / (1.f + expf(-v));
}

}  // namespace mmlab::kernels
