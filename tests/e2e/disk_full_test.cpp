// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab train` meeting a full disk where it writes its own files (the token cache, a checkpoint),
// as a process with the full-disk preload: one sentence naming the file and the fix, exit 4, and
// nothing half-written left in the folder.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/store/store.h"
#include "core/util/error.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

std::size_t count_lines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// Every file below `dir`, as paths relative to it.
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).string());
  }
  return files;
}

class DiskFull : public ::testing::Test {
 protected:
  // A run that writes a token cache (byte tokenizer) and one checkpoint, at its end.
  fs::path write_experiment() {
    test::write_synthetic_corpus(dir_ / "corpus", 8, 60);
    nlohmann::json ex = {
        {"name", "disk-full"},
        {"runs",
         {{{"name", "r"},
           {"model", {{"family", "mamba"}, {"d_model", 32}, {"n_block", 1}, {"d_state", 8}}},
           {"train",
            {{"steps", 3},
             {"batch_size", 2},
             {"seq_len", 16},
             {"eval_every", 0},
             {"checkpoint_every", 0},
             {"threads", 1}}},
           {"data",
            {{"source", (dir_ / "corpus").string()},
             {"tokenizer", "byte"},
             {"val_fraction", 0.2}}}}}}};
    const fs::path p = dir_ / "experiment.json";
    std::ofstream(p) << ex.dump(2);
    return p;
  }

  // Trains with the folder `full` (below the data home) out of space after `bytes` new bytes.
  test::ProcessResult train_with_full(const std::string& full, long bytes) {
    const fs::path experiment = write_experiment();
    const fs::path disk = dir_ / "xdg" / "mmlab" / full;
    fs::create_directories(disk);
    std::map<std::string, std::string> env = {{"XDG_DATA_HOME", (dir_ / "xdg").string()},
                                              {"LD_PRELOAD", MMLAB_FULL_DISK_PRELOAD},
                                              {"MMLAB_FULL_DISK_DIR", fs::canonical(disk).string()},
                                              {"MMLAB_FULL_DISK_BYTES", std::to_string(bytes)}};
    return test::run_mmlab(
        {"train", experiment.string(), "--db", db().string(), "--progress", "none"}, env,
        dir_.path());
  }

  fs::path db() const { return dir_ / "results.sqlite"; }

  test::TempDir dir_;
};

TEST_F(DiskFull, UnderTheTokenCacheTheRunSaysSoOnceAndLeavesNoCacheFile) {
  const test::ProcessResult r = train_with_full("cache", 256);
  EXPECT_EQ(r.exit_code, kExitNoResource) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.find("mmlab: The disk is full while writing the token cache " +
                       (dir_ / "xdg" / "mmlab" / "cache").string() + "/"),
            0u)
      << r.err;
  EXPECT_NE(r.err.find(".tok. Free some space, or set the data config's cache to false."),
            std::string::npos)
      << r.err;
  EXPECT_EQ(files_under(dir_ / "xdg" / "mmlab" / "cache"), std::vector<std::string>{});
}

TEST_F(DiskFull, UnderTheCheckpointsTheRunFailsNamingTheCheckpointAndLeavesNoPartialFile) {
  const test::ProcessResult r = train_with_full("checkpoints", 4096);
  EXPECT_EQ(r.exit_code, kExitNoResource) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  const std::string sentence = "The disk is full while writing the checkpoint " +
                               (dir_ / "xdg" / "mmlab" / "checkpoints").string() + "/";
  EXPECT_NE(r.err.find(sentence), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Free some space or lower train.keep_checkpoints, then resume the run."),
            std::string::npos)
      << r.err;
  EXPECT_EQ(files_under(dir_ / "xdg" / "mmlab" / "checkpoints"), std::vector<std::string>{});
  // The run is stored as failed with the same sentence, its points kept.
  store::ResultsStore st(db());
  const auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, store::RunStatus::kFailed);
  EXPECT_NE(runs[0].error_text.find(sentence), std::string::npos) << runs[0].error_text;
  EXPECT_EQ(st.reader().points(runs[0].id, "loss").size(), 3u);
}

}  // namespace
}  // namespace mmlab
