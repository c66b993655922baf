// SPDX-License-Identifier: GPL-3.0-or-later
// Tokenizers behind one interface: byte-level (no training), GPT-2's byte-level BPE (hand-written:
// no packaged C++ library reads its files) and SentencePiece (trained on the corpus or loaded).
// Token ids are int32 everywhere in core/data; the trainer turns them into tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/vocabulary.h"

namespace mmlab::data {

/// Enough to rebuild a tokenizer later (e.g. from a checkpoint for `mmlab generate`): the kind
/// ("byte" | "gpt2" | "sentencepiece") and the file or folder it was loaded from (empty for byte).
struct TokenizerSpec {
  std::string kind;
  std::filesystem::path path;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Text → ids. All input is text: a literal "<|endoftext|>" in a document is not turned into
  /// the end-of-text id, so a corpus cannot inject document boundaries. Thread-safe.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  /// Ids → text; the end-of-text id decodes to nothing. An id outside [0, vocab_size()) is a
  /// UserError. Thread-safe.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  /// The id placed between documents.
  virtual std::int32_t eot_id() const = 0;
  /// "byte", "gpt2" or "sentencepiece".
  virtual std::string name() const = 0;
  /// A hash of everything that decides the ids (vocabulary, merges, model), for cache keys.
  virtual std::uint64_t content_hash() const = 0;
  /// How to load this tokenizer again (see load_tokenizer).
  virtual TokenizerSpec spec() const = 0;
};

/// 256 byte values as ids 0..255 plus end-of-text 256 (vocab 257).
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr std::int32_t kEot = 256;
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return kByteVocabSize; }
  std::int32_t eot_id() const override { return kEot; }
  std::string name() const override { return "byte"; }
  std::uint64_t content_hash() const override;
  TokenizerSpec spec() const override { return {"byte", {}}; }
};

/// GPT-2's byte-level BPE, read from `vocab.json` + `merges.txt` (Hugging Face) or `encoder.json` +
/// `vocab.bpe` (OpenAI). Implementation in gpt2_tokenizer.cpp.
class Gpt2Tokenizer final : public Tokenizer {
 public:
  /// `dir` holds one of the two file pairs. Missing, unreadable or malformed files are a
  /// UserError naming the file. The vocabulary must contain all 256 byte symbols and
  /// "<|endoftext|>" (50256 in GPT-2's own files).
  static std::unique_ptr<Gpt2Tokenizer> from_dir(const std::filesystem::path& dir);
  /// From the two files explicitly: `vocab` is the JSON token→id map, `merges` the ranked merges.
  static std::unique_ptr<Gpt2Tokenizer> from_files(const std::filesystem::path& vocab,
                                                   const std::filesystem::path& merges);

  ~Gpt2Tokenizer() override;
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override;
  std::int32_t eot_id() const override;
  std::string name() const override { return "gpt2"; }
  std::uint64_t content_hash() const override;
  TokenizerSpec spec() const override;

  /// GPT-2's pre-tokenization (the regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
  /// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, scanned by hand over UTF-8 code points). Exposed for tests.
  static std::vector<std::string_view> pretokenize(std::string_view text);

  struct Impl;

 private:
  explicit Gpt2Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A SentencePiece model (BPE when trained here). Implementation in sentencepiece_tokenizer.cpp.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  /// Loads a `.model` file; a missing or invalid file is a UserError naming it.
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& model);

  /// Trains a BPE model with up to `vocab_size` pieces (fewer when the text allows no more merges)
  /// on the text that `for_each_text` feeds (it is called once and must call its argument once per
  /// document) and saves it atomically to `model_out`. Whitespace and newlines are kept exactly
  /// (identity normalization, "\n" is a piece); with vocab_size >= 512 unseen characters fall back
  /// to bytes, so decode(encode(x)) == x for any UTF-8 text, below that they become <unk>. A vocab
  /// size the text cannot support is a UserError that says so.
  static std::unique_ptr<SentencePieceTokenizer> train(
      const std::function<void(const std::function<void(std::string_view)>&)>& for_each_text,
      int vocab_size, const std::filesystem::path& model_out);

  ~SentencePieceTokenizer() override;
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override;
  std::int32_t eot_id() const override;  ///< the model's `</s>` (eos) piece
  std::string name() const override { return "sentencepiece"; }
  std::uint64_t content_hash() const override;
  TokenizerSpec spec() const override;

  struct Impl;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Rebuilds a tokenizer from its spec. "gpt2" with an empty path looks in $MMLAB_GPT2_DIR, then
/// data_home()/tokenizers/gpt2 (where scripts/get-corpus puts it). An unknown kind is a UserError
/// listing the valid ones.
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerSpec& spec);

/// Where GPT-2's files are looked for when no path is given (see load_tokenizer).
std::filesystem::path default_gpt2_dir();

}  // namespace mmlab::data
