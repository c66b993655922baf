// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/sampler.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/util/error.h"

namespace mmlab::data {

SamplingMode parse_sampling_mode(const std::string& name) {
  if (name == "random") return SamplingMode::kRandom;
  if (name == "contiguous") return SamplingMode::kContiguous;
  throw UserError("The sampling mode \"" + name + "\" is unknown.",
                  "Use one of: random, contiguous.");
}

std::string to_string(SamplingMode mode) {
  return mode == SamplingMode::kRandom ? "random" : "contiguous";
}

WindowSampler::WindowSampler(const std::vector<std::int32_t>& tokens, int seq_len, int batch_size,
                             SamplingMode mode, std::uint64_t seed)
    : tokens_(&tokens),
      seq_len_(seq_len),
      batch_size_(batch_size),
      mode_(mode),
      seed_(seed),
      rng_(seed) {
  if (seq_len < 1 || batch_size < 1) {
    throw UserError("The window sampler needs seq_len and batch_size of at least 1 (got " +
                        std::to_string(seq_len) + " and " + std::to_string(batch_size) + ").",
                    "Set both to positive values in the train config.");
  }
  if (tokens.size() < static_cast<std::size_t>(seq_len) + 1) {
    throw UserError("The training data has " + std::to_string(tokens.size()) +
                        " tokens, fewer than seq_len + 1 = " + std::to_string(seq_len + 1) + ".",
                    "Lower seq_len or use a larger corpus.");
  }
}

std::uint64_t WindowSampler::uniform(std::uint64_t n) {
  // Rejection sampling instead of std::uniform_int_distribution, whose algorithm differs between
  // standard libraries: a checkpoint must replay the same windows wherever it resumes.
  const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  for (;;) {
    const std::uint64_t r = rng_();
    if (r >= threshold) return r % n;
  }
}

std::vector<std::int32_t> WindowSampler::next_batch() {
  std::vector<std::int32_t> out(static_cast<std::size_t>(batch_size_) *
                                static_cast<std::size_t>(seq_len_ + 1));
  next_batch(out.data());
  return out;
}

void WindowSampler::next_batch(std::int32_t* out) {
  const std::size_t n = tokens_->size();
  const std::size_t row = static_cast<std::size_t>(seq_len_) + 1;
  for (int b = 0; b < batch_size_; ++b) {
    std::size_t start;
    if (mode_ == SamplingMode::kRandom) {
      start = static_cast<std::size_t>(uniform(n - row + 1));
    } else {
      if (cursor_ + row > n) cursor_ = 0;  // wrap: the stream starts over
      start = static_cast<std::size_t>(cursor_);
      cursor_ += static_cast<std::uint64_t>(seq_len_);
    }
    std::memcpy(out + static_cast<std::size_t>(b) * row, tokens_->data() + start,
                row * sizeof(std::int32_t));
  }
  ++batches_;
}

std::string WindowSampler::state() const {
  std::ostringstream rng;
  rng << rng_;
  nlohmann::json j = {{"mode", to_string(mode_)},  {"seed", seed_},
                      {"seq_len", seq_len_},       {"batch_size", batch_size_},
                      {"tokens", tokens_->size()}, {"batches", batches_},
                      {"cursor", cursor_},         {"rng", rng.str()}};
  return j.dump();
}

void WindowSampler::restore(const std::string& state) {
  const std::string hint =
      "Resume with the data config and batch settings the checkpoint was "
      "made with, or start a new run.";
  nlohmann::json j = nlohmann::json::parse(state, nullptr, false);
  auto bad = [&]() {
    throw UserError("The saved data position is not a window sampler state.", hint);
  };
  if (j.is_discarded() || !j.is_object()) bad();
  for (const char* key : {"seed", "seq_len", "batch_size", "tokens", "batches", "cursor"}) {
    if (!j.contains(key) || !j[key].is_number_integer()) bad();
  }
  if (!j.contains("mode") || !j["mode"].is_string() || !j.contains("rng") ||
      !j["rng"].is_string()) {
    bad();
  }
  auto mismatch = [&](const std::string& what, const std::string& saved, const std::string& now) {
    throw UserError(
        "The saved data position was made with " + what + " " + saved + ", not " + now + ".", hint);
  };
  if (j["mode"].get<std::string>() != to_string(mode_)) {
    mismatch("sampling", j["mode"].get<std::string>(), to_string(mode_));
  }
  if (j["seq_len"].get<int>() != seq_len_) {
    mismatch("seq_len", std::to_string(j["seq_len"].get<int>()), std::to_string(seq_len_));
  }
  if (j["batch_size"].get<int>() != batch_size_) {
    mismatch("batch_size", std::to_string(j["batch_size"].get<int>()), std::to_string(batch_size_));
  }
  if (j["tokens"].get<std::uint64_t>() != tokens_->size()) {
    mismatch("a training stream of", std::to_string(j["tokens"].get<std::uint64_t>()) + " tokens",
             std::to_string(tokens_->size()));
  }
  std::mt19937_64 rng;
  std::istringstream in(j["rng"].get<std::string>());
  in >> rng;
  if (in.fail()) bad();
  rng_ = rng;
  seed_ = j["seed"].get<std::uint64_t>();
  batches_ = j["batches"].get<std::uint64_t>();
  cursor_ = j["cursor"].get<std::uint64_t>();
}

std::vector<std::vector<std::int32_t>> validation_batches(const std::vector<std::int32_t>& tokens,
                                                          int seq_len, int batch_size,
                                                          int max_batches) {
  if (seq_len < 1 || batch_size < 1 || max_batches < 1) {
    throw UserError(
        "Validation needs seq_len, batch_size and the number of batches to be at "
        "least 1.",
        "Set them to positive values in the train config.");
  }
  const std::size_t n = tokens.size();
  const std::size_t len = static_cast<std::size_t>(seq_len);
  const std::size_t row = len + 1;
  const std::size_t windows = n >= row ? (n - 1) / len : 0;
  const std::size_t batches =
      std::min<std::size_t>(static_cast<std::size_t>(max_batches), windows / batch_size);
  if (batches == 0) {
    throw UserError("The validation split has " + std::to_string(n) + " tokens, too few for one " +
                        "batch of " + std::to_string(batch_size) + " windows of " +
                        std::to_string(row) + " tokens.",
                    "Raise val_fraction, or lower batch_size or seq_len.");
  }
  const std::size_t used = batches * static_cast<std::size_t>(batch_size);
  std::vector<std::vector<std::int32_t>> out(batches);
  for (std::size_t b = 0; b < batches; ++b) {
    out[b].resize(static_cast<std::size_t>(batch_size) * row);
    for (std::size_t r = 0; r < static_cast<std::size_t>(batch_size); ++r) {
      const std::size_t k = b * static_cast<std::size_t>(batch_size) + r;
      // Spread the windows evenly when there are more than needed.
      const std::size_t window = k * windows / used;
      std::memcpy(out[b].data() + r * row, tokens.data() + window * len,
                  row * sizeof(std::int32_t));
    }
  }
  return out;
}

}  // namespace mmlab::data
