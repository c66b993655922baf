// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/readers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>

#include "core/util/error.h"
#include "data_test_support.h"

namespace mmlab::data {
namespace {

using test::write_text;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Collected {
  std::vector<std::string> texts;
  std::vector<std::string> origins;
  DocumentSink sink() {
    return {[this](std::string_view t, const std::string& o) {
              texts.emplace_back(t);
              origins.push_back(o);
            },
            nullptr};
  }
};

void write_gz(const std::filesystem::path& path, const std::string& content) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())),
            static_cast<int>(content.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TextReader, OneFileIsOneDocument) {
  test::TempDir dir;
  write_text(dir / "a.txt", "First line.\n\nSecond paragraph.\n");
  Collected c;
  read_text_file(dir / "a.txt", TextSplit::kFile, c.sink());
  EXPECT_THAT(c.texts, ElementsAre("First line.\n\nSecond paragraph.\n"));
}

TEST(TextReader, BlankLinesSplitParagraphsWithLineNumbers) {
  test::TempDir dir;
  write_text(dir / "a.txt", "One\ntwo\n\n  \nThree\n\n\nFour");
  Collected c;
  read_text_file(dir / "a.txt", TextSplit::kBlankLines, c.sink());
  EXPECT_THAT(c.texts, ElementsAre("One\ntwo", "Three", "Four"));
  EXPECT_EQ(c.origins[1], (dir / "a.txt").string() + ":5");
}

TEST(TextReader, WhitespaceOnlyFileHasNoDocument) {
  test::TempDir dir;
  write_text(dir / "a.txt", " \n\n\t\n");
  Collected c;
  read_text_file(dir / "a.txt", TextSplit::kFile, c.sink());
  EXPECT_TRUE(c.texts.empty());
}

TEST(SourceFiles, FolderIsRecursiveSortedAndSkipsLicenseAndHiddenFiles) {
  test::TempDir dir;
  write_text(dir / "b.txt", "b");
  write_text(dir / "a" / "z.txt", "z");
  write_text(dir / "LICENSE.md", "license");
  write_text(dir / "README", "readme");
  write_text(dir / ".complete", "x");
  const auto files = list_source_files(dir.path());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], dir / "a" / "z.txt");
  EXPECT_EQ(files[1], dir / "b.txt");
}

TEST(SourceFiles, MissingSourceAndEmptyFolderAreUserErrors) {
  test::TempDir dir;
  EXPECT_THAT(message_of([&] { list_source_files(dir / "nope"); }),
              HasSubstr("nope does not exist"));
  std::filesystem::create_directories(dir / "empty");
  EXPECT_THAT(message_of([&] { list_source_files(dir / "empty"); }),
              HasSubstr("contains no files"));
}

TEST(SourceFiles, FolderReachedTwiceThroughLinksIsAUserError) {
  // A link back to a parent folder: the walk went round until the system refused the path, and
  // listed every file 41 times.
  test::TempDir dir;
  write_text(dir / "corpus" / "a.txt", "a");
  std::filesystem::create_directory_symlink(dir / "corpus", dir / "corpus" / "again");
  EXPECT_EQ(message_of([&] { list_source_files(dir / "corpus"); }),
            "The corpus folder " + (dir / "corpus").string() +
                " reaches the same folder twice: " + (dir / "corpus" / "again").string() +
                " leads back to a folder already read. Remove that symbolic link, or point the "
                "data source at one of the folders.");
  // Two links to one folder would read its files twice.
  std::filesystem::remove(dir / "corpus" / "again");
  write_text(dir / "shared" / "b.txt", "b");
  std::filesystem::create_directory_symlink(dir / "shared", dir / "corpus" / "one");
  std::filesystem::create_directory_symlink(dir / "shared", dir / "corpus" / "two");
  // Which link comes second depends on the folder's order on disk.
  EXPECT_THAT(
      message_of([&] { list_source_files(dir / "corpus"); }),
      ::testing::AnyOf(HasSubstr((dir / "corpus" / "one").string() + " leads back to a folder"),
                       HasSubstr((dir / "corpus" / "two").string() + " leads back to a folder")));
  std::filesystem::remove(dir / "corpus" / "two");
  EXPECT_EQ(list_source_files(dir / "corpus").size(), 2u);
}

TEST(SourceFiles, FormatsFromExtensions) {
  EXPECT_EQ(resolve_format("x/c4-train.00000-of-01024.json.gz", SourceFormat::kAuto),
            SourceFormat::kJsonl);
  EXPECT_EQ(resolve_format("a.jsonl", SourceFormat::kAuto), SourceFormat::kJsonl);
  EXPECT_EQ(resolve_format("a.jsonl.gz", SourceFormat::kAuto), SourceFormat::kJsonl);
  EXPECT_EQ(resolve_format("fineweb_val_000000.bin", SourceFormat::kAuto), SourceFormat::kBin);
  EXPECT_EQ(resolve_format("book.txt", SourceFormat::kAuto), SourceFormat::kText);
  EXPECT_EQ(resolve_format("book.txt", SourceFormat::kJsonl), SourceFormat::kJsonl);
  EXPECT_THROW(parse_source_format("csv"), UserError);
  EXPECT_THROW(parse_text_split("lines"), UserError);
}

TEST(JsonlReader, ReadsTextFieldSkippingBlankLines) {
  test::TempDir dir;
  write_text(dir / "a.jsonl",
             "{\"text\": \"alpha\", \"url\": \"u\"}\n\n{\"text\": \"beta\\nline\"}\r\n"
             "{\"text\": \"gamma\"}");
  Collected c;
  read_jsonl_file(dir / "a.jsonl", c.sink());
  EXPECT_THAT(c.texts, ElementsAre("alpha", "beta\nline", "gamma"));
  EXPECT_EQ(c.origins[1], (dir / "a.jsonl").string() + ":3");
}

TEST(JsonlReader, ReadsGzipWrittenWithZlib) {
  test::TempDir dir;
  std::string content;
  for (int i = 0; i < 5000; ++i) content += "{\"text\": \"document " + std::to_string(i) + "\"}\n";
  write_gz(dir / "c4.json.gz", content);
  Collected c;
  std::uint64_t last_position = 0;
  DocumentSink sink = c.sink();
  sink.on_position = [&](std::uint64_t p) { last_position = p; };
  read_jsonl_file(dir / "c4.json.gz", sink);
  ASSERT_EQ(c.texts.size(), 5000u);
  EXPECT_EQ(c.texts[4321], "document 4321");
  EXPECT_EQ(last_position, std::filesystem::file_size(dir / "c4.json.gz"));
}

TEST(JsonlReader, OtherTextField) {
  test::TempDir dir;
  write_text(dir / "a.jsonl", "{\"story\": \"Once upon a time.\"}\n");
  Collected c;
  read_jsonl_file(dir / "a.jsonl", c.sink(), "story");
  EXPECT_THAT(c.texts, ElementsAre("Once upon a time."));
}

TEST(JsonlReader, MalformedLineNamesFileAndLine) {
  test::TempDir dir;
  write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": oops}\n");
  const std::string msg = message_of([&] {
    Collected c;
    read_jsonl_file(dir / "bad.jsonl", c.sink());
  });
  EXPECT_THAT(msg, HasSubstr("Line 3 of " + (dir / "bad.jsonl").string() + " is not valid JSON."));
}

TEST(JsonlReader, MissingFieldAndNonObjectNameTheLine) {
  test::TempDir dir;
  write_text(dir / "a.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  EXPECT_THAT(message_of([&] {
                Collected c;
                read_jsonl_file(dir / "a.jsonl", c.sink());
              }),
              HasSubstr("Line 2 of " + (dir / "a.jsonl").string() + " has no \"text\" string."));
  write_text(dir / "b.jsonl", "[1, 2]\n");
  EXPECT_THAT(message_of([&] {
                Collected c;
                read_jsonl_file(dir / "b.jsonl", c.sink());
              }),
              HasSubstr("Line 1 of " + (dir / "b.jsonl").string() + " is not a JSON object."));
}

TEST(JsonlReader, TruncatedGzipIsReportedWithOffset) {
  test::TempDir dir;
  std::string content;
  for (int i = 0; i < 20000; ++i)
    content += "{\"text\": \"row " + std::to_string(i * 7919) + "\"}\n";
  write_gz(dir / "full.jsonl.gz", content);
  std::string bytes = test::read_bytes(dir / "full.jsonl.gz");
  write_text(dir / "cut.jsonl.gz", bytes.substr(0, bytes.size() / 2));
  const std::string msg = message_of([&] {
    Collected c;
    read_jsonl_file(dir / "cut.jsonl.gz", c.sink());
  });
  EXPECT_THAT(msg, HasSubstr((dir / "cut.jsonl.gz").string() +
                             " is corrupt or truncated at compressed byte offset"));
  EXPECT_THAT(msg, HasSubstr(" (the compressed data ends early). Download or recompress it"));
}

TEST(JsonlReader, CorruptGzipIsReported) {
  test::TempDir dir;
  std::string content;
  for (int i = 0; i < 20000; ++i)
    content += "{\"text\": \"row " + std::to_string(i * 7919) + "\"}\n";
  write_gz(dir / "full.jsonl.gz", content);
  std::string bytes = test::read_bytes(dir / "full.jsonl.gz");
  for (std::size_t i = 100; i < 400; ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x5A);
  write_text(dir / "bad.jsonl.gz", bytes);
  const std::string msg = message_of([&] {
    Collected c;
    read_jsonl_file(dir / "bad.jsonl.gz", c.sink());
  });
  EXPECT_THAT(msg, HasSubstr((dir / "bad.jsonl.gz").string() + " is corrupt or truncated"));
  // In plain words, not zlib's ("invalid block type", "invalid distance too far back").
  EXPECT_THAT(msg, HasSubstr(" (the compressed data is damaged). Download or recompress it"));
}

TEST(TokenShardTest, RoundTripThroughMmap) {
  test::TempDir dir;
  std::vector<std::uint16_t> tokens = {50256, 15496, 995, 0, 65535};
  TokenShard::write(dir / "s.bin", tokens);
  EXPECT_EQ(std::filesystem::file_size(dir / "s.bin"), 1024u + 10u);
  TokenShard shard(dir / "s.bin");
  ASSERT_EQ(shard.size(), 5u);
  EXPECT_EQ(shard[0], 50256);
  EXPECT_EQ(shard[4], 65535);
  TokenShard moved = std::move(shard);
  EXPECT_EQ(moved[1], 15496);
  EXPECT_EQ(shard.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is defined
}

TEST(TokenShardTest, TruncatedShardNamesOffset) {
  test::TempDir dir;
  TokenShard::write(dir / "s.bin", std::vector<std::uint16_t>(100, 7));
  std::string bytes = test::read_bytes(dir / "s.bin");
  write_text(dir / "cut.bin", bytes.substr(0, 1024 + 150));
  EXPECT_THAT(message_of([&] { TokenShard s(dir / "cut.bin"); }),
              HasSubstr((dir / "cut.bin").string() + " is truncated at byte offset 1174: its "
                                                     "header declares 100 tokens"));
  write_text(dir / "header.bin", bytes.substr(0, 300));
  EXPECT_THAT(message_of([&] { TokenShard s(dir / "header.bin"); }),
              HasSubstr("ends at byte offset 300, inside its 1024-byte header"));
}

TEST(TokenShardTest, BadMagicAndVersion) {
  test::TempDir dir;
  TokenShard::write(dir / "s.bin", std::vector<std::uint16_t>(4, 1));
  std::string bytes = test::read_bytes(dir / "s.bin");
  std::string bad = bytes;
  bad[0] = 1;
  write_text(dir / "magic.bin", bad);
  EXPECT_THAT(message_of([&] { TokenShard s(dir / "magic.bin"); }),
              HasSubstr("magic.bin has magic number"));
  bad = bytes;
  bad[4] = 2;
  write_text(dir / "version.bin", bad);
  EXPECT_THAT(message_of([&] { TokenShard s(dir / "version.bin"); }),
              HasSubstr("has version 2 at byte offset 4"));
  EXPECT_THAT(message_of([&] { TokenShard s(dir / "missing.bin"); }), HasSubstr("does not exist"));
}

}  // namespace
}  // namespace mmlab::data
