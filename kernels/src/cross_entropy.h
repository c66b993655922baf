// SPDX-License-Identifier: GPL-3.0-or-later
// Row-wise softmax cross-entropy over a block of logits, in place, on raw pointers: for each row
//   loss[r] = logsumexp(logits[r, :V]) - logits[r, target[r]]
// and, when grad_scale != 0, the row is overwritten with its gradient
//   d loss[r] / d logits[r, j] * grad_scale = (softmax(logits[r])_j - [j == target[r]]) *
//   grad_scale
// (0 in the padding columns V..row_stride-1, whatever they held). Math in fp32 whatever the
// element type.
//
// Shapes: R rows, V vocabulary, row_stride >= V elements between rows (a multiple of 8 for bf16,
// of 4 for fp32, so rows load as 16-byte vectors), targets (R) int64; a target outside [0, V)
// gives a NaN loss.
#pragma once

#include <cstdint>

#include "kernels/src/element_type.h"

namespace mmlab::kernels {

struct CrossEntropyRowsParams {
  void* logits = nullptr;  // (R, row_stride), in: logits, out: scaled gradient (if grad_scale)
  ElementType type = ElementType::kBFloat16;
  int64_t rows = 0, vocab = 0, row_stride = 0;
  const int64_t* targets = nullptr;  // (R)
  float* losses = nullptr;           // (R) fp32
  float grad_scale = 0.f;            // 0: losses only, logits left as they are
  /// Takes the streaming kernel even where the row fits the register-resident one: for the
  /// bench (kernels/dev/lm_head_dev.cpp) and checks that compare the two, which agree to rounding.
  bool force_streaming = false;
};

/// nullptr on success, else CUDA's error text.
const char* cross_entropy_rows(const CrossEntropyRowsParams& p, void* stream);

/// The row stride cross_entropy_rows needs for `vocab` columns: rounded up to 64 elements, so the
/// GEMMs producing and consuming the logits see aligned leading dimensions too.
inline int64_t padded_vocab(int64_t vocab) {
  return (vocab + 63) / 64 * 64;
}

}  // namespace mmlab::kernels
