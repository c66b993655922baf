// SPDX-License-Identifier: GPL-3.0-or-later
// LayerNorm / RMSNorm over rows on raw pointers, fp32 math whatever the element types:
//   forward   y = (x - mean) * rstd * weight + bias     (RMSNorm: mean 0, no bias)
//             with rstd = 1 / sqrt(var + eps) (RMSNorm: mean of x^2), mean and rstd kept per row;
//   backward  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight, xhat the
//             normalised row (RMSNorm: without the mean(g) term), and per-warp partial sums of
//             dweight = sum dy * xhat and dbias = sum dy, which the caller sums over their rows.
// One warp per row, the row in registers: D up to kNormMaxCols.
//
// Shapes: N rows, D columns; x, y, dy, dx (N, D) contiguous; weight, bias (D) fp32; mean, rstd
// (N) fp32; the partial sums (P, D) fp32 with P = norm_backward_partial_rows(N).
#pragma once

#include <cstdint>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

/// The widest row the kernels keep in registers (32 columns per lane of a warp).
constexpr int64_t kNormMaxCols = 1024;

struct NormParams {
  const void* x = nullptr;  // (N, D)
  ElementType x_type = ElementType::kFloat32;
  const float* weight = nullptr;  // (D)
  const float* bias = nullptr;    // (D), nullptr: none
  void* y = nullptr;              // (N, D)
  ElementType y_type = ElementType::kFloat32;
  float* mean = nullptr;  // (N) out
  float* rstd = nullptr;  // (N) out
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
  bool rms = false;
};

struct NormBackwardParams {
  const void* x = nullptr;  // (N, D)
  ElementType x_type = ElementType::kFloat32;
  const void* dy = nullptr;  // (N, D)
  ElementType dy_type = ElementType::kFloat32;
  const float* weight = nullptr;     // (D)
  const float* mean = nullptr;       // (N), as the forward wrote it
  const float* rstd = nullptr;       // (N)
  void* dx = nullptr;                // (N, D) in x_type
  float* dweight_partial = nullptr;  // (P, D)
  float* dbias_partial = nullptr;    // (P, D), nullptr: none (RMSNorm)
  int64_t rows = 0, cols = 0;
  bool rms = false;
};

/// P: the rows of partial sums norm_backward writes for N rows (one per warp of its launch, a
/// fixed number so that the sums do not depend on the card).
int64_t norm_backward_partial_rows(int64_t rows);

/// nullptr on success, else CUDA's error text (or why the shape is not taken).
const char* norm_forward(const NormParams& p, void* stream);
const char* norm_backward(const NormBackwardParams& p, void* stream);

}  // namespace mmlab::kernels
