// SPDX-License-Identifier: GPL-3.0-or-later
// What to tell a researcher whose batch did not fit on the GPU: the memory the step needed, the
// card's, and the batch_size / grad_accum that keep the tokens per step and would fit.
// No LibTorch here: the trainer passes in what it read from the allocator.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mmlab {

struct MemoryAtFailure {
  int64_t peak_bytes = 0;       // the allocator's peak before the allocation that failed
  int64_t requested_bytes = 0;  // that allocation (0 when the error does not say)
  int64_t total_bytes = 0;      // the card's memory
  int64_t free_bytes = 0;       // free on the card before the run allocated anything
  int64_t weight_bytes = 0;     // the model's parameters
};

struct BatchAdvice {
  int batch_size = 0, grad_accum = 0;
};

/// The bytes the step needed at least: the peak it reached plus the allocation that failed.
int64_t needed_bytes(const MemoryAtFailure& m);

/// The largest batch_size that divides batch_size * grad_accum (so the tokens per step stay) and
/// fits, assuming everything beyond the weights grows with the batch and that weights, gradients
/// and AdamW's two moments (4x the weights) stay; nullopt when not even one row fits.
std::optional<BatchAdvice> advise_batch(const MemoryAtFailure& m, int batch_size, int grad_accum);

/// "Tried to allocate 2.50 GiB" in an allocator's message, in bytes; 0 when absent.
int64_t requested_bytes_in(const std::string& message);

/// The one sentence for the run's error: the need, the card, and the advice (or a smaller model);
/// without the card's figures (total_bytes 0) only what to lower.
std::string out_of_memory_sentence(const std::string& device, const MemoryAtFailure& m,
                                   int batch_size, int seq_len, int grad_accum);

}  // namespace mmlab
