// SPDX-License-Identifier: GPL-3.0-or-later
// A tokenized corpus as documents: what the token cache stores and the train/val split divides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mmlab::data {

/// A tokenized corpus before the split: all documents' tokens back to back (no end-of-text ids),
/// and where each document starts. This is what the disk cache stores.
struct TokenizedDocuments {
  std::vector<std::int32_t> tokens;
  /// offsets[i] is where document i starts; offsets.back() == tokens.size(); size = documents + 1.
  std::vector<std::uint64_t> offsets;
  std::size_t documents() const { return offsets.empty() ? 0 : offsets.size() - 1; }
};

}  // namespace mmlab::data
