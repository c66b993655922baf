// SPDX-License-Identifier: GPL-3.0-or-later
// Vocabulary sizes known before a tokenizer is loaded, beside the configs that name a tokenizer, so
// that the parameter counts of `mmlab models`, the studio's read-outs and the trainer's checks use
// the same numbers before any tokenizer exists. The tokenizers themselves report these sizes
// (tests/core/data/tokenizer_test.cpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace mmlab {

/// The byte tokenizer: 256 byte values plus the end-of-text id 256.
inline constexpr std::int32_t kByteVocabSize = 257;
/// GPT-2's byte-level BPE: 50,000 merges, 256 bytes and end-of-text.
inline constexpr std::int32_t kGpt2VocabSize = 50257;

/// The vocabulary `tokenizer` ("byte", "gpt2", "sentencepiece") will have: exact for byte and for
/// GPT-2's published files, the requested `sentencepiece_vocab` (its upper bound) for
/// SentencePiece.
constexpr std::int32_t expected_vocab_size(std::string_view tokenizer,
                                           std::int32_t sentencepiece_vocab) {
  if (tokenizer == "byte") return kByteVocabSize;
  if (tokenizer == "sentencepiece") return sentencepiece_vocab;
  return kGpt2VocabSize;
}

}  // namespace mmlab
