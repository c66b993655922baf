// SPDX-License-Identifier: GPL-3.0-or-later
// How the conv and decode-step kernels see a tensor: a raw pointer, its element type and strides.
// Plain C++ (no CUDA, no torch), shared by the .cu files and their glue.
#pragma once

#include <cstdint>

namespace mmlab::kernels {

/// The element types the kernels read and write; they accumulate in fp32 whatever they read.
enum class ElementType : int { kFloat32 = 0, kBFloat16 = 1 };

/// A small read-only input (weights, per-channel vectors, one decode step): up to two strided
/// dimensions, read element by element with its type decided at run time.
struct StridedInput {
  const void* data = nullptr;  // nullptr when the optional input is absent
  ElementType type = ElementType::kFloat32;
  int64_t stride0 = 0;  // elements between entries of the first dimension
  int64_t stride1 = 0;  // elements between entries of the second dimension (0 for 1-D)
};

}  // namespace mmlab::kernels
