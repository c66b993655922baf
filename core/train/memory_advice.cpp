// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/memory_advice.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>

namespace mmlab {

namespace {

// Room the advice leaves for the allocator's fragmentation and the CUDA context.
constexpr double kUsableFraction = 0.9;

std::string gigabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

}  // namespace

int64_t needed_bytes(const MemoryAtFailure& m) {
  return m.peak_bytes + m.requested_bytes;
}

std::optional<BatchAdvice> advise_batch(const MemoryAtFailure& m, int batch_size, int grad_accum) {
  if (batch_size < 1 || grad_accum < 1) return std::nullopt;
  const int64_t card = m.free_bytes > 0 ? std::min(m.free_bytes, m.total_bytes) : m.total_bytes;
  const double per_row =
      std::max(1.0, static_cast<double>(needed_bytes(m) - m.weight_bytes) / batch_size);
  const double room = kUsableFraction * static_cast<double>(card) - 4.0 * m.weight_bytes;
  const int64_t rows = room > 0 ? static_cast<int64_t>(std::floor(room / per_row)) : 0;
  const int64_t per_step = static_cast<int64_t>(batch_size) * grad_accum;
  for (int64_t b = std::min<int64_t>(rows, batch_size); b >= 1; --b) {
    if (per_step % b == 0) return BatchAdvice{static_cast<int>(b), static_cast<int>(per_step / b)};
  }
  return std::nullopt;
}

int64_t requested_bytes_in(const std::string& message) {
  static const std::regex tried(R"(Tried to allocate ([0-9.]+) ?(GiB|MiB|KiB|B|bytes))");
  std::smatch m;
  if (!std::regex_search(message, m, tried)) return 0;
  const double v = std::stod(m[1].str());
  const std::string unit = m[2].str();
  const double scale = unit == "GiB"   ? 1073741824.0
                       : unit == "MiB" ? 1048576.0
                       : unit == "KiB" ? 1024.0
                                       : 1.0;
  return static_cast<int64_t>(v * scale);
}

std::string out_of_memory_sentence(const std::string& device, const MemoryAtFailure& m,
                                   int batch_size, int seq_len, int grad_accum) {
  if (m.total_bytes <= 0) {
    // No figures (not a GPU, or the driver did not answer): only what to lower.
    return "Out of memory on " + device + " (batch_size " + std::to_string(batch_size) +
           ", seq_len " + std::to_string(seq_len) +
           "). Lower train.batch_size (raise train.grad_accum to keep the tokens per step) or "
           "use a smaller model.";
  }
  std::string s = "Out of memory on " + device + ": batch_size " + std::to_string(batch_size) +
                  " x seq_len " + std::to_string(seq_len) + " needed more than " +
                  gigabytes(needed_bytes(m)) + " and the card has " + gigabytes(m.total_bytes);
  if (m.free_bytes > 0) s += " (" + gigabytes(m.free_bytes) + " free when the run started)";
  const auto advice = advise_batch(m, batch_size, grad_accum);
  if (!advice) return s + "; not even one row fits: use a smaller model or a shorter seq_len.";
  if (advice->batch_size == batch_size) {
    // The estimate says it fits: the failure came from something the estimate does not see.
    return s + "; lower train.batch_size (raise train.grad_accum to keep the tokens per step).";
  }
  return s + "; train.batch_size " + std::to_string(advice->batch_size) +
         " with train.grad_accum " + std::to_string(advice->grad_accum) +
         " keeps the tokens per step and should fit.";
}

}  // namespace mmlab
