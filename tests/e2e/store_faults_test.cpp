// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab` against a results database in trouble: processes creating one fresh file at once, a
// folder the reader cannot write, a missing file, another program's file, and a disk that fills
// up under a training run. Each ends with an intact database (or none created) and one sentence
// on stderr.
#include <grp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/store/store.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;
using store::Database;
using store::OpenOptions;
using store::ResultsStore;
using store::RunStatus;

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

std::string read_bytes(const fs::path& p) {
  return test::slurp(p);
}

int64_t mtime_ns(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

bool side_files_exist(const fs::path& db) {
  return fs::exists(db.string() + "-wal") || fs::exists(db.string() + "-shm") ||
         fs::exists(db.string() + "-journal");
}

// Runs `mmlab args...` as a user that cannot write what the test made unwritable: as root
// (whom permissions do not stop) the child drops to uid/gid 65534 before exec.
test::ProcessResult run_mmlab_unprivileged(const std::vector<std::string>& args,
                                           const fs::path& scratch) {
  test::SpawnOptions how;
  how.drop_privileges = true;
  return test::run_mmlab(args, {}, scratch, how);
}

// A database with one experiment ("faults") of two finished runs with curves, closed.
void write_database(const fs::path& path) {
  ResultsStore st(path);
  const int64_t exp = st.ensure_experiment("faults");
  for (const char* name : {"alpha", "beta"}) {
    store::NewRun nr;
    nr.experiment_id = exp;
    nr.name = name;
    nr.family = "mamba";
    nr.total_steps = 20;
    const int64_t run = st.create_run(nr);
    std::vector<store::MetricPoint> points;
    for (int64_t s = 1; s <= 20; ++s) {
      points.push_back({"loss", s, s * 100, 0.1 * s, 5.0 / s});
      points.push_back({metric::kLossSmooth, s, s * 100, 0.1 * s, 5.0 / s});
    }
    st.writer(run).append_points(points);
    st.writer(run).set_status(RunStatus::kFinished);
  }
}

class StoreFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = {{"XDG_DATA_HOME", (dir_ / "xdg").string()}};
    // The unprivileged child of run_mmlab_unprivileged must be able to enter the test folder.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
  }

  test::TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(StoreFaults, FourProcessesCreatingOneFreshDatabaseAtOnceAllSucceed) {
  const fs::path source = dir_ / "source.sqlite";
  write_database(source);
  constexpr int kRounds = 2;  // each mmlab start loads LibTorch: more rounds by --gtest_repeat
  constexpr int kProcesses = 4;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // `runs import` creates its target when it does not exist: all four race to create it.
    const fs::path fresh = dir_ / ("fresh-" + std::to_string(round)) / "results.sqlite";
    std::vector<pid_t> pids;
    for (int i = 0; i < kProcesses; ++i) {
      const std::string tag = std::to_string(round) + "-" + std::to_string(i);
      pids.push_back(test::spawn_mmlab({"runs", "import", source.string(), "--db", fresh.string()},
                                       env_, (dir_ / ("imp" + tag + ".out")).string(),
                                       (dir_ / ("imp" + tag + ".err")).string()));
    }
    int imported = 0;
    for (int i = 0; i < kProcesses; ++i) {
      const std::string tag = std::to_string(round) + "-" + std::to_string(i);
      EXPECT_EQ(test::wait_exit(pids[static_cast<size_t>(i)]), 0)
          << test::slurp(dir_ / ("imp" + tag + ".err"));
      const std::string out = test::slurp(dir_ / ("imp" + tag + ".out"));
      if (out.rfind("Imported 2 runs", 0) == 0) ++imported;
    }
    EXPECT_EQ(imported, 1);  // one copied both runs, the others found them present
    ResultsStore st(fresh);
    EXPECT_EQ(st.integrity_check(), "ok");
    EXPECT_EQ(st.reader().list_runs().size(), 2u);
    EXPECT_EQ(st.reader().list_experiments().size(), 1u);
  }
}

TEST_F(StoreFaults, ReadOnlyCommandsWorkWhereTheyCannotWrite) {
  struct Setup {
    const char* name;
    bool lock_folder;  // else only the file is made unwritable
  };
  for (const Setup& setup : {Setup{"read-only folder", true}, Setup{"read-only file", false}}) {
    SCOPED_TRACE(setup.name);
    const fs::path folder = dir_ / (setup.lock_folder ? "archive" : "shelf");
    const fs::path db = folder / "results.sqlite";
    write_database(db);
    ASSERT_FALSE(side_files_exist(db));
    const std::string before = read_bytes(db);
    const int64_t mtime = mtime_ns(db);
    using fs::perms;
    const perms read_exec = perms::owner_read | perms::owner_exec | perms::group_read |
                            perms::group_exec | perms::others_read | perms::others_exec;
    fs::permissions(
        setup.lock_folder ? folder : db,
        setup.lock_folder ? read_exec : perms::owner_read | perms::group_read | perms::others_read);
    const std::vector<std::vector<std::string>> commands = {
        {"runs", "list", "--db", db.string()},
        {"runs", "show", "1", "--db", db.string()},
        {"report", "--db", db.string()},
        {"export", "1", "2", "--db", db.string()},
    };
    for (const auto& args : commands) {
      SCOPED_TRACE(args[0] + " " + args[1]);
      const test::ProcessResult r = run_mmlab_unprivileged(args, dir_.path());
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.err, "");
      // Every command shows the runs' data: names, or (export) their points.
      if (args[0] == "export") {
        EXPECT_EQ(count_lines(r.out), 1 + 2 * 2 * 20) << r.out;  // header + 2 runs x 2 metrics
      } else {
        EXPECT_NE(r.out.find("alpha"), std::string::npos) << r.out;
      }
    }
    fs::permissions(setup.lock_folder ? folder : db, perms::owner_all);
    EXPECT_EQ(read_bytes(db), before);
    EXPECT_EQ(mtime_ns(db), mtime);
    EXPECT_FALSE(side_files_exist(db));
  }
}

TEST_F(StoreFaults, CommandsThatNeedADatabaseRefuseAMissingOneAndCreateNothing) {
  const fs::path folder = dir_ / "nowhere";
  const std::string db = (folder / "missing.sqlite").string();
  const std::vector<std::vector<std::string>> commands = {
      {"train", "--resume", "1", "--progress", "none"},
      {"runs", "list"},
      {"runs", "show", "1"},
      {"runs", "tag", "1", "x"},
      {"runs", "note", "1", "text"},
      {"runs", "rm", "1", "--yes"},
      {"report"},
      {"export", "1"},
  };
  for (auto args : commands) {
    SCOPED_TRACE(args.size() > 1 ? args[0] + " " + args[1] : args[0]);
    args.insert(args.end(), {"--db", db});
    const test::ProcessResult r = test::run_mmlab(args, env_, dir_.path());
    EXPECT_EQ(r.exit_code, kExitBadInput) << r.err;
    EXPECT_EQ(r.err, "mmlab: The results database " + db +
                         " does not exist. Check --db (or train a run first to create it).\n");
    EXPECT_FALSE(fs::exists(folder));
  }
}

TEST_F(StoreFaults, AnotherProgramsDatabaseIsRefusedUnchanged) {
  const fs::path foreign = dir_ / "photos.sqlite";
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, "CREATE TABLE runs (id, x); INSERT INTO runs VALUES (1, 2);", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(h);
  }
  const std::string before = read_bytes(foreign);
  // A command that writes and one that only reads.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"runs", "tag", "1", "x", "--db", foreign.string()},
        std::vector<std::string>{"runs", "list", "--db", foreign.string()}}) {
    SCOPED_TRACE(args[1]);
    const test::ProcessResult r = test::run_mmlab(args, env_, dir_.path());
    EXPECT_EQ(r.exit_code, kExitBadInput) << r.err;
    EXPECT_EQ(r.err, "mmlab: The file " + foreign.string() +
                         " is an SQLite database of another program, not an mmlab results "
                         "database. Choose another file with --db.\n");
    EXPECT_EQ(read_bytes(foreign), before);
    EXPECT_FALSE(side_files_exist(foreign));
  }
}

TEST_F(StoreFaults, AFullDiskUnderTheDatabaseFailsTheRunOutLoud) {
  test::write_synthetic_corpus(dir_ / "corpus");
  nlohmann::json ex = {
      {"name", "full-disk"},
      {"defaults",
       {{"model", {{"family", "mamba"}, {"d_model", 32}, {"n_block", 1}, {"d_state", 8}}},
        {"train",
         {{"steps", 100000},  // far more than it gets to before the disk is full
          {"batch_size", 4},
          {"seq_len", 32},
          {"log_every", 1},
          {"eval_every", 100000},
          {"checkpoint_every", 0},
          {"threads", 1}}},
        {"data",
         {{"source", (dir_ / "corpus").string()}, {"tokenizer", "byte"}, {"val_fraction", 0.2}}}}},
      {"runs", {{{"name", "filler"}}}}};
  const fs::path exp = dir_ / "experiment.json";
  std::ofstream(exp) << ex.dump(2);
  // Only the database's folder is full; checkpoints and caches live elsewhere.
  const fs::path disk = dir_ / "small-disk";
  fs::create_directories(disk);
  const fs::path db = fs::canonical(disk) / "results.sqlite";
  std::map<std::string, std::string> env = env_;
  env["LD_PRELOAD"] = MMLAB_FULL_DISK_PRELOAD;
  env["MMLAB_FULL_DISK_DIR"] = fs::canonical(disk).string();
  // Room for the new database and a few seconds of points, not more.
  env["MMLAB_FULL_DISK_BYTES"] = std::to_string(256 * 1024);

  const pid_t pid =
      test::spawn_mmlab({"train", exp.string(), "--db", db.string(), "--progress", "none"}, env,
                        (dir_ / "train.out").string(), (dir_ / "train.err").string());
  // A trainer that never meets the full disk would run for minutes: stop waiting after 90 s.
  int rc = -1;
  for (int i = 0; i < 900; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (rc == -1) {
    ::kill(pid, SIGKILL);
    test::wait_exit(pid);
    FAIL() << "the trainer never met the full disk";
  }
  const std::string err = test::slurp(dir_ / "train.err");
  EXPECT_EQ(rc, kExitNoResource) << err;
  // One sentence: the run, the database and what to do.
  EXPECT_EQ(count_lines(err), 1) << err;
  EXPECT_NE(err.find("The disk is full while writing the results database " + db.string() + "."),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("Free some space"), std::string::npos) << err;

  // Read without the full disk: intact, and the run is not left `running`.
  ResultsStore st(db, OpenOptions{Database::Mode::kReadOnly});
  EXPECT_EQ(st.integrity_check(), "ok");
  const std::vector<store::RunRow> runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  const store::RunRow& run = runs[0];
  if (run.status == RunStatus::kFailed) {
    EXPECT_NE(run.error_text.find("The disk is full"), std::string::npos) << run.error_text;
  } else {
    // Even the failed status could not be written: the process is gone, so the run is lost,
    // and stderr said so.
    EXPECT_EQ(run.status, RunStatus::kRunning);
    EXPECT_EQ(st.reader().lost_runs(0), std::vector<int64_t>{run.id});
    EXPECT_NE(err.find("shows as lost"), std::string::npos) << err;
  }
  // The committed points are whole: steps 1..n, each once.
  const std::vector<store::PointRow> loss = st.reader().points(run.id, "loss");
  EXPECT_GT(loss.size(), 0u);
  for (size_t i = 0; i < loss.size(); ++i) {
    ASSERT_EQ(loss[i].step, static_cast<int64_t>(i + 1));
  }
}

}  // namespace
}  // namespace mmlab
