// SPDX-License-Identifier: GPL-3.0-or-later
// The on-disk cache of a tokenized corpus, keyed by the corpus content and the tokenizer, so a
// corpus is tokenized once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/data/documents.h"

namespace mmlab::data {

/// The on-disk token cache: a 64-byte header ("MMLABTOK", format version, token width 2 or 4
/// bytes, token count, document count, key, xxh64 of the whole file), the document offsets as
/// uint64, then the tokens. Written atomically (temporary file + rename), so an interrupted write
/// never leaves a partial cache under the final name.
void write_token_cache(const std::filesystem::path& file, const TokenizedDocuments& docs,
                       std::uint64_t key);

/// What read_token_cache found.
struct TokenCacheRead {
  enum Result {
    kLoaded,    ///< `out` holds the documents
    kMissing,   ///< no file: the corpus has not been tokenized yet
    kUnusable,  ///< a file that must not be used: damaged, of another key, another format
  };
  Result result = kMissing;
  /// For kUnusable, what is wrong, to follow the file's name: "fails its checksum (...)".
  std::string problem;
};

/// Loads a cache written by write_token_cache for `key` (the corpus and tokenizer hash). Before
/// anything is returned the file is checked whole: header, format version, key, size against the
/// header's counts, checksum, document offsets, and every token id below `vocab_size`, so a
/// damaged cache can never put an impossible id into a training batch.
TokenCacheRead read_token_cache(const std::filesystem::path& file, std::uint64_t key,
                                std::int32_t vocab_size, TokenizedDocuments* out);

}  // namespace mmlab::data
