// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab train` on damaged data, as a process: a corrupt token cache is rebuilt with a one-line
// note and the run trains; damaged corpus files give one sentence and exit 3. No library's own
// text (LibTorch, zlib, nlohmann) reaches stderr or the database. The readers' messages for each
// kind of damage are tested in tests/core/data; here a few go through the whole program.
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <sstream>

#include "core/data/readers.h"
#include "core/store/store.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

// Text that only a library's internals produce: LibTorch's stack traces and error kinds,
// nlohmann's exception names.
void expect_no_library_text(const std::string& text) {
  for (const char* marker : {"Exception raised from", "frame #", "c10::", "at::", "torch::",
                             "index out of range", "json.exception", "what():"}) {
    EXPECT_EQ(text.find(marker), std::string::npos) << "'" << marker << "' in:\n" << text;
  }
}

std::size_t count_lines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

class DataFaults : public ::testing::Test {
 protected:
  void SetUp() override { env_ = {{"XDG_DATA_HOME", (dir_ / "xdg").string()}}; }

  fs::path write_experiment(const fs::path& source, int64_t steps,
                            const std::string& name = "data-faults") {
    nlohmann::json ex = {
        {"name", name},
        {"runs",
         {{{"name", "r"},
           {"model", {{"family", "mamba"}, {"d_model", 32}, {"n_block", 1}, {"d_state", 8}}},
           {"train",
            {{"steps", steps},
             {"batch_size", 4},
             {"seq_len", 32},
             {"eval_every", 0},
             {"eval_batches", 2},
             {"threads", 1}}},
           {"data",
            {{"source", source.string()}, {"tokenizer", "byte"}, {"val_fraction", 0.2}}}}}}};
    const fs::path p = dir_ / "experiment.json";
    std::ofstream(p) << ex.dump(2);
    return p;
  }

  test::ProcessResult train(const fs::path& experiment) {
    return test::run_mmlab({"train", experiment.string(), "--db", db(), "--progress", "none"}, env_,
                           dir_.path());
  }

  std::string db() const { return (dir_ / "results.sqlite").string(); }

  std::vector<fs::path> cache_files() const {
    std::vector<fs::path> files;
    const fs::path cache = dir_ / "xdg" / "mmlab" / "cache";
    if (!fs::exists(cache)) return files;
    for (const auto& e : fs::directory_iterator(cache)) files.push_back(e.path());
    return files;
  }

  test::TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(DataFaults, CorruptTokenCacheIsRebuiltWithOneNoteAndTheRunTrains) {
  test::write_synthetic_corpus(dir_ / "corpus", 8, 60);
  const fs::path experiment = write_experiment(dir_ / "corpus", 4);
  auto first = train(experiment);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(cache_files().size(), 1u);
  const fs::path cache = cache_files()[0];
  const std::string intact = test::slurp(cache);

  // Every token becomes 0xFFFF, an id far outside the byte tokenizer's 257: used as it is, the
  // first batch would index past the embedding.
  std::string damaged = intact;
  const std::size_t body = 64 + 9 * 8;  // header, then 8 + 1 document offsets
  ASSERT_LT(body, damaged.size());
  for (std::size_t i = body; i < damaged.size(); ++i) damaged[i] = static_cast<char>(0xFF);
  std::ofstream(cache, std::ios::binary | std::ios::trunc) << damaged;

  // A second experiment on the same corpus (the same one again would only continue the first).
  auto second = train(write_experiment(dir_ / "corpus", 4, "data-faults-again"));
  EXPECT_EQ(second.exit_code, 0) << second.err;
  const std::string note = "mmlab: note: The token cache " + cache.string() +
                           " fails its checksum (the file was changed or damaged after it was "
                           "written); tokenizing the corpus again to rebuild it.\n";
  EXPECT_NE(second.err.find(note), std::string::npos) << second.err;
  EXPECT_EQ(count_lines(second.err), 1u) << "only the note:\n" << second.err;
  expect_no_library_text(second.err);
  // Rebuilt whole under its name (so the next run loads it), with nothing left beside it.
  EXPECT_EQ(test::slurp(cache), intact);
  EXPECT_EQ(cache_files().size(), 1u);

  store::ResultsStore st(db());
  const auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, store::RunStatus::kFinished) << run.error_text;
    EXPECT_EQ(run.error_text, "");
    EXPECT_EQ(st.reader().points(run.id, "loss").size(), 4u);
  }
  // Both runs trained on the same tokens, so they start from the same loss.
  EXPECT_EQ(st.reader().points(runs[0].id, "loss")[0].value,
            st.reader().points(runs[1].id, "loss")[0].value);
}

void write_gz(const fs::path& file, const std::string& content) {
  gzFile gz = gzopen(file.c_str(), "wb");
  gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
  gzclose(gz);
}

struct BadCorpus {
  const char* name;
  std::function<fs::path(const fs::path& dir)> make;  // returns the data source
  const char* message;                                // part of the one line on stderr
};

TEST_F(DataFaults, DamagedCorpusFilesGiveOneSentenceAndExit3) {
  std::string rows;
  for (int i = 0; i < 5000; ++i) rows += "{\"text\": \"row " + std::to_string(i * 7919) + "\"}\n";
  const std::vector<BadCorpus> cases = {
      {"gzip damaged",
       [&](const fs::path& d) {
         write_gz(d / "full.jsonl.gz", rows);
         std::string bytes = test::slurp(d / "full.jsonl.gz");
         for (std::size_t i = 100; i < 400; ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x5A);
         fs::create_directories(d / "c");
         std::ofstream(d / "c" / "part.jsonl.gz", std::ios::binary) << bytes;
         return d / "c";
       },
       "(the compressed data is damaged). Download or recompress it again"},
      {"bin header",
       [&](const fs::path& d) {
         fs::create_directories(d / "c");
         std::ofstream(d / "c" / "shard.bin", std::ios::binary) << std::string(2048, 'x');
         return d / "c";
       },
       "shard.bin has magic number 2021161080 at byte offset 0, not 20240520."},
      {"folder link loop",
       [&](const fs::path& d) {
         test::write_synthetic_corpus(d / "c", 2, 10);
         fs::create_directory_symlink(d / "c", d / "c" / "loop");
         return d / "c";
       },
       "reaches the same folder twice"},
  };
  for (const BadCorpus& c : cases) {
    SCOPED_TRACE(c.name);
    test::TempDir d;
    const fs::path experiment = write_experiment(c.make(d.path()), 2, std::string("bad ") + c.name);
    auto r = train(experiment);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    expect_no_library_text(r.err);
    for (const char* zlib : {"invalid", "incorrect header check", "unexpected end of file"}) {
      EXPECT_EQ(r.err.find(zlib), std::string::npos) << r.err;
    }
  }
  // Each launch keeps its run, failed with the sentence, rather than losing it (a corpus exists
  // when the run is queued; what is in it is found while preparing the run).
  store::ResultsStore st(db());
  const auto runs = st.reader().list_runs();
  EXPECT_EQ(runs.size(), cases.size());
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, store::RunStatus::kFailed) << run.experiment;
    EXPECT_FALSE(run.error_text.empty()) << run.experiment;
  }
}

}  // namespace
}  // namespace mmlab
