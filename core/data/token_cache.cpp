// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/token_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

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
  FileWriter out(file,
                 {"the token cache", "Free some space, or set the data config's cache to false.",
                  "Check that " + file.parent_path().string() +
                      " is writable, or set the data config's cache to false."});
  // The hash goes into the header, so the header is written last, over a placeholder.
  HashState hash = new_hash_state();
  auto put = [&](const void* data, std::size_t bytes) {
    XXH64_update(hash.get(), data, bytes);
    out.write(data, bytes);
  };
  put(&header, sizeof(header));
  put(docs.offsets.data(), sizeof(std::uint64_t) * docs.offsets.size());
  // Tokens go out in blocks so a 4-byte-per-id corpus is never copied whole.
  std::vector<std::uint16_t> narrow;
  constexpr std::size_t kBlock = 1 << 20;
  for (std::size_t i = 0; i < docs.tokens.size(); i += kBlock) {
    const std::size_t n = std::min(kBlock, docs.tokens.size() - i);
    if (header.width == 2) {
      narrow.assign(docs.tokens.begin() + static_cast<std::ptrdiff_t>(i),
                    docs.tokens.begin() + static_cast<std::ptrdiff_t>(i + n));
      put(narrow.data(), 2 * n);
    } else {
      put(docs.tokens.data() + i, 4 * n);
    }
  }
  CacheHeader final_header = header;
  final_header.hash = XXH64_digest(hash.get());
  out.write_at(0, &final_header, sizeof(final_header));
  out.commit();
}

TokenCacheRead read_token_cache(const fs::path& file, std::uint64_t key, std::int32_t vocab_size,
                                TokenizedDocuments* out) {
  UniqueFile in(std::fopen(file.c_str(), "rb"));
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

}  // namespace mmlab::data
