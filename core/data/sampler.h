// SPDX-License-Identifier: GPL-3.0-or-later
// Batches of windows over a token stream: B windows of L+1 tokens, row-major (inputs are a row's
// first L tokens, targets its last L). The sampler's whole state is a small JSON string, stored in
// checkpoints so a resumed run draws exactly the batches it would have drawn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mmlab::data {

enum class SamplingMode {
  kRandom,      ///< each window starts at a uniform random offset (the paper's code)
  kContiguous,  ///< windows follow each other (stride L, so every token is a target once), wrapping
};

/// "random" | "contiguous"; anything else is a UserError listing the valid names.
SamplingMode parse_sampling_mode(const std::string& name);
std::string to_string(SamplingMode mode);

class WindowSampler {
 public:
  /// `tokens` must outlive the sampler. A stream shorter than seq_len + 1 tokens is a UserError
  /// (it says to lower seq_len or use a larger corpus); seq_len or batch_size < 1 too.
  WindowSampler(const std::vector<std::int32_t>& tokens, int seq_len, int batch_size,
                SamplingMode mode, std::uint64_t seed);

  /// The next batch: batch_size * (seq_len + 1) ids, row-major.
  std::vector<std::int32_t> next_batch();
  /// Same, into `out` (batch_size * (seq_len + 1) ids), without allocating.
  void next_batch(std::int32_t* out);

  /// Batches drawn since the start (restored with the state).
  std::uint64_t batches() const { return batches_; }
  int seq_len() const { return seq_len_; }
  int batch_size() const { return batch_size_; }

  /// The data position as JSON text: mode, seed, seq_len, batch_size, stream length, batches
  /// drawn, the contiguous cursor and the full std::mt19937_64 state.
  std::string state() const;
  /// Restores a state() string. A string that is not such a state, or one saved for another
  /// stream length, mode, seq_len or batch size, is a UserError (the checkpoint belongs to
  /// another data config).
  void restore(const std::string& state);

 private:
  std::uint64_t uniform(std::uint64_t n);  // in [0, n), the same on every standard library

  const std::vector<std::int32_t>* tokens_;
  int seq_len_;
  int batch_size_;
  SamplingMode mode_;
  std::uint64_t seed_;
  std::mt19937_64 rng_;
  std::uint64_t cursor_ = 0;  // contiguous mode: start of the next window
  std::uint64_t batches_ = 0;
};

/// A fixed set of validation batches: up to `max_batches` batches of `batch_size` windows of
/// seq_len + 1 tokens, with stride seq_len (each token a target once), spread evenly over the
/// stream when it holds more windows than requested. Always the same for the same stream. A
/// stream too short for one full batch is a UserError saying which setting to change.
std::vector<std::vector<std::int32_t>> validation_batches(const std::vector<std::int32_t>& tokens,
                                                          int seq_len, int batch_size,
                                                          int max_batches);

}  // namespace mmlab::data
