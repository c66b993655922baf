// SPDX-License-Identifier: GPL-3.0-or-later
// The token cache: what is written reads back, and a damaged file is never used.
#include "core/data/token_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data_test_support.h"

namespace mmlab::data {
namespace {

using test::write_text;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::int32_t kWideVocab = 200000;

TEST(TokenCache, RoundTripNarrowAndWide) {
  test::TempDir dir;
  TokenizedDocuments docs;
  docs.tokens = {1, 65535, 0, 7};
  docs.offsets = {0, 3, 4};
  write_token_cache(dir / "a.tok", docs, 42);
  EXPECT_EQ(std::filesystem::file_size(dir / "a.tok"), 64u + 3 * 8 + 4 * 2);
  TokenizedDocuments back;
  const TokenCacheRead read = read_token_cache(dir / "a.tok", 42, 65536, &back);
  ASSERT_EQ(read.result, TokenCacheRead::kLoaded) << read.problem;
  EXPECT_EQ(back.tokens, docs.tokens);
  EXPECT_EQ(back.offsets, docs.offsets);
  EXPECT_EQ(read_token_cache(dir / "none.tok", 42, 65536, &back).result, TokenCacheRead::kMissing);

  docs.tokens[1] = 100000;
  write_token_cache(dir / "w.tok", docs, 42);
  EXPECT_EQ(std::filesystem::file_size(dir / "w.tok"), 64u + 3 * 8 + 4 * 4);
  ASSERT_EQ(read_token_cache(dir / "w.tok", 42, kWideVocab, &back).result, TokenCacheRead::kLoaded);
  EXPECT_EQ(back.tokens[1], 100000);
}

// A cache of 3 documents written for key 42, and its bytes.
struct CacheFile {
  test::TempDir dir;
  std::filesystem::path file = dir / "c.tok";
  TokenizedDocuments docs;
  std::string bytes;
  CacheFile() {
    for (std::int32_t i = 0; i < 300; ++i) docs.tokens.push_back(i % 250);
    docs.offsets = {0, 100, 120, 300};
    write_token_cache(file, docs, 42);
    bytes = test::read_bytes(file);
  }
  // Reads `bytes` back as a cache with the byte tokenizer's vocabulary; an unusable file must
  // leave `out` as it was.
  TokenCacheRead read(const std::string& bytes) const {
    write_text(file, bytes);
    TokenizedDocuments out;
    out.tokens = {-1};
    const TokenCacheRead r = read_token_cache(file, 42, 257, &out);
    if (r.result != TokenCacheRead::kLoaded) {
      EXPECT_THAT(out.tokens, ElementsAre(-1));
    }
    return r;
  }
};

TEST(TokenCache, TruncatedFileIsUnusable) {
  CacheFile c;
  for (std::size_t keep : {c.bytes.size() - 1, c.bytes.size() - 200, std::size_t{70},
                           std::size_t{10}, std::size_t{0}}) {
    SCOPED_TRACE(keep);
    const TokenCacheRead r = c.read(c.bytes.substr(0, keep));
    EXPECT_EQ(r.result, TokenCacheRead::kUnusable);
    EXPECT_FALSE(r.problem.empty());
  }
  EXPECT_EQ(c.read(c.bytes.substr(0, c.bytes.size() - 2)).problem,
            "is 694 bytes, which does not match the 3 documents and 300 tokens its header "
            "declares");
  EXPECT_EQ(c.read(c.bytes.substr(0, 10)).problem, "is shorter than its 64-byte header");
  // One byte too many is damage too.
  EXPECT_EQ(c.read(c.bytes + "x").result, TokenCacheRead::kUnusable);
}

TEST(TokenCache, FlippedByteAnywhereFailsTheChecksum) {
  CacheFile c;
  // In the tokens (token 10 becomes 11, still a valid id), in the offsets, in the header's
  // reserved bytes: only the checksum can tell.
  for (std::size_t at : {std::size_t{64 + 4 * 8 + 2 * 10}, std::size_t{64 + 8 + 1}, std::size_t{60},
                         c.bytes.size() - 1}) {
    SCOPED_TRACE(at);
    std::string damaged = c.bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
    const TokenCacheRead r = c.read(damaged);
    EXPECT_EQ(r.result, TokenCacheRead::kUnusable);
    EXPECT_EQ(r.problem,
              "fails its checksum (the file was changed or damaged after it was written)");
  }
  EXPECT_EQ(c.read(c.bytes).result, TokenCacheRead::kLoaded);
}

TEST(TokenCache, WrongHeaderIsUnusable) {
  CacheFile c;
  std::string magic = c.bytes;
  magic[0] = 'X';
  EXPECT_EQ(c.read(magic).problem, "does not start with the token cache's header");
  std::string version = c.bytes;
  version[8] = 1;  // the first format, which had no checksum
  EXPECT_EQ(c.read(version).problem, "is in cache format 1, not 2");
  std::string width = c.bytes;
  width[12] = 3;
  EXPECT_EQ(c.read(width).problem, "declares 3 bytes per token");
  std::string count = c.bytes;
  count[16 + 6] = 1;  // a token count of ~2^48: refused before anything is allocated
  EXPECT_THAT(c.read(count).problem, HasSubstr("does not match the 3 documents and"));
  std::string text(c.bytes.size(), 'a');
  EXPECT_EQ(c.read(text).result, TokenCacheRead::kUnusable);
}

TEST(TokenCache, OtherKeyIsUnusable) {
  CacheFile c;
  TokenizedDocuments out;
  const TokenCacheRead r = read_token_cache(c.file, 43, 257, &out);
  EXPECT_EQ(r.result, TokenCacheRead::kUnusable);
  EXPECT_EQ(r.problem, "belongs to another corpus or tokenizer");
  EXPECT_TRUE(out.tokens.empty());
}

TEST(TokenCache, IdOutsideTheVocabularyIsUnusable) {
  CacheFile c;
  // Intact and checksummed, but for a larger vocabulary than the one it is read with.
  c.docs.tokens[150] = 257;
  write_token_cache(c.file, c.docs, 42);
  const TokenCacheRead r = c.read(test::read_bytes(c.file));
  EXPECT_EQ(r.result, TokenCacheRead::kUnusable);
  EXPECT_EQ(r.problem, "holds token id 257 (token 150), outside the tokenizer's vocabulary of 257");
  c.docs.tokens[150] = -5;
  write_token_cache(c.file, c.docs, 42);
  EXPECT_THAT(c.read(test::read_bytes(c.file)).problem, HasSubstr("outside the tokenizer's"));
}

TEST(TokenCache, OffsetsThatDoNotFitTheTokensAreUnusable) {
  CacheFile c;
  c.docs.offsets = {0, 120, 100, 300};
  write_token_cache(c.file, c.docs, 42);
  EXPECT_EQ(c.read(test::read_bytes(c.file)).problem,
            "has document offsets that do not fit its tokens");
}

}  // namespace
}  // namespace mmlab::data
