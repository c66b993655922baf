// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab train --resume` under faults, as processes: SIGKILLs at named moments (start-up, the
// window before a run records its pid, inside checkpoint writes, between a checkpoint's file and
// its row, during pruning and during the final evaluation) never lose a committed point and the
// run still ends on the uninterrupted curve; a damaged or missing checkpoint is refused by name
// without touching the run; the run keeps its checkpoint folder; every failure says why on stderr.
//
// The named moments come from core/train/fault_point.h (MMLAB_TEST_KILL_AT, MMLAB_TEST_NAN_AT),
// compiled into test builds only.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "core/store/store.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

constexpr int kKilled = -SIGKILL;

// `mmlab args...` in `cwd` with extra environment, to completion.
test::ProcessResult run_in(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env, const fs::path& cwd,
                           const fs::path& scratch) {
  test::SpawnOptions how;
  how.cwd = cwd;
  return test::run_mmlab(args, env, scratch, how);
}

std::string xxh64_hex(const fs::path& p) {
  const std::string bytes = test::slurp(p);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return hex;
}

// step -> value of one metric.
using Curve = std::map<int64_t, double>;

Curve curve(store::ResultsStore& st, int64_t run_id, const std::string& metric) {
  Curve c;
  for (const auto& p : st.reader().points(run_id, metric)) c[p.step] = p.value;
  return c;
}

// Every metric whose values do not depend on timing, for comparing runs.
std::map<std::string, Curve> timing_free_curves(store::ResultsStore& st, int64_t run_id) {
  std::map<std::string, Curve> out;
  for (const auto& m : st.reader().metric_names(run_id)) {
    if (m == "tokens_per_s" || m == "step_time") continue;
    out[m] = curve(st, run_id, m);
  }
  return out;
}

class ResumeFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_synthetic_corpus(dir_ / "corpus", 6, 80);
    env_ = {{"XDG_DATA_HOME", (dir_ / "xdg").string()}};
  }

  // A tiny MoE-Mamba (expert loads are recorded), evaluated every 6 steps and checkpointed every
  // 4, so that most checkpoints fall between evaluations and the final evaluation (at `steps`,
  // not a multiple of 6) comes after the last checkpoint.
  fs::path write_experiment(int64_t steps, int keep_checkpoints, double lr = 3e-3) {
    nlohmann::json ex = {{"name", "faults"},
                         {"runs",
                          {{{"name", "moe-mamba"},
                            {"model",
                             {{"family", "moe-mamba"},
                              {"d_model", 16},
                              {"n_block", 1},
                              {"n_expert", 2},
                              {"d_expert", 32},
                              {"d_state", 4}}},
                            {"train",
                             {{"steps", steps},
                              {"batch_size", 2},
                              {"seq_len", 16},
                              {"lr", lr},
                              {"eval_every", 6},
                              {"eval_batches", 3},
                              {"checkpoint_every", 4},
                              {"keep_checkpoints", keep_checkpoints},
                              {"threads", 1}}},
                            {"data",
                             {{"source", (dir_ / "corpus").string()},
                              {"tokenizer", "byte"},
                              {"val_fraction", 0.2}}}}}}};
    const fs::path p = dir_ / "experiment.json";
    std::ofstream(p) << ex.dump(2);
    return p;
  }

  std::string db() const { return (dir_ / "results.sqlite").string(); }

  test::ProcessResult mmlab(std::vector<std::string> args, const std::string& kill_at = "",
                            const fs::path& cwd = {}) {
    auto env = env_;
    if (!kill_at.empty()) env["MMLAB_TEST_KILL_AT"] = kill_at;
    args.insert(args.end(), {"--db", db()});
    return run_in(args, env, cwd.empty() ? dir_.path() : cwd, dir_.path());
  }

  test::ProcessResult resume(int64_t run, std::vector<std::string> extra = {},
                             const std::string& kill_at = "", const fs::path& cwd = {}) {
    std::vector<std::string> args = {"train", "--resume", std::to_string(run)};
    args.insert(args.end(), extra.begin(), extra.end());
    if (std::find(extra.begin(), extra.end(), "--progress") == extra.end()) {
      args.insert(args.end(), {"--progress", "none"});
    }
    return mmlab(args, kill_at, cwd);
  }

  // The uninterrupted run every faulty one must end up equal to.
  std::map<std::string, Curve> reference(const fs::path& experiment) {
    const std::string ref_db = (dir_ / "reference.sqlite").string();
    auto r = run_in({"train", experiment.string(), "--db", ref_db, "--progress", "none"}, env_,
                    dir_.path(), dir_.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    store::ResultsStore st(ref_db);
    return timing_free_curves(st, st.reader().list_runs().at(0).id);
  }

  // A run killed right after step `killed_after`: its checkpoints are those before it.
  int64_t interrupted_run(const fs::path& experiment, int killed_after) {
    auto r = mmlab({"train", experiment.string(), "--progress", "none"},
                   "step:" + std::to_string(killed_after));
    EXPECT_EQ(r.exit_code, kKilled) << r.err;
    store::ResultsStore st(db());
    return st.reader().list_runs().at(0).id;
  }

  test::TempDir dir_;
  std::map<std::string, std::string> env_;
};

// Files in the run's checkpoint folder, by name.
std::set<std::string> folder_files(const fs::path& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.insert(e.path().filename().string());
  return names;
}

TEST_F(ResumeFaults, TwentyKillsAtNamedMomentsLoseNothingAndEndOnTheUninterruptedCurve) {
  // Checkpoints every 4 steps up to 44, evaluations every 6 and a final one after the step-44
  // checkpoint (44 % 6 != 0); keep_checkpoints 1.
  const int64_t steps = 44;
  const fs::path exp = write_experiment(steps, 1);
  const auto expected = reference(exp);
  ASSERT_EQ(expected.at("loss").size(), static_cast<size_t>(steps));
  ASSERT_FALSE(expected.at("expert_load/0/0").empty());

  // "+N ms" is a kill by timer; anything else a fault point of the trainer (NAME:N = its N-th
  // pass in that process).
  const std::vector<std::string> kills = {
      "+0 ms",               // start-up, before main()
      "run-created",         // the run's row is queued, without a pid: the next resume starts it
      "prepared",            // data ready, the queued run taken by this process (its pid)
      "prepared",            // a resume's start-up, the run not yet touched
      "checkpoint-write:1",  // a partial temporary file of step 4
      "checkpoint-saved:1",  // step 4 complete, its row not written
      "checkpoint-write:2",
      "checkpoint-pruned:1",  // the old row forgotten, its file still there
      "step:3",               // between checkpoints: unflushed points are lost
      "checkpoint-write:2",
      "checkpoint-saved:2",
      "step:2",
      "checkpoint-pruned:2",
      "checkpoint-write:1",
      "step:5",
      "checkpoint-write:3",
      "checkpoint-saved:1",
      "final-eval",  // after the step-44 checkpoint
      "final-eval",  // resumed at that checkpoint, killed in the final evaluation again
      "final-eval",
  };
  ASSERT_EQ(kills.size(), 20u);
  int64_t run_id = 0;
  int64_t committed = 0;  // the newest checkpoint step seen: points up to it are for good
  for (size_t k = 0; k < kills.size(); ++k) {
    SCOPED_TRACE("kill " + std::to_string(k) + " at " + kills[k]);
    std::vector<std::string> args =
        run_id == 0 ? std::vector<std::string>{"train", exp.string(), "--progress", "none"}
                    : std::vector<std::string>{"train", "--resume", std::to_string(run_id),
                                               "--progress", "none"};
    args.insert(args.end(), {"--db", db()});
    if (kills[k][0] == '+') {
      auto env = env_;
      pid_t pid =
          test::spawn_mmlab(args, env, (dir_ / "out.txt").string(), (dir_ / "err.txt").string());
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(kills[k].substr(1))));
      ::kill(pid, SIGKILL);
      ASSERT_EQ(test::wait_exit(pid), kKilled) << test::slurp(dir_ / "err.txt");
    } else {
      auto env = env_;
      env["MMLAB_TEST_KILL_AT"] = kills[k];
      auto r = run_in(args, env, dir_.path(), dir_.path());
      // Killed exactly there: not refused, not finished early, not failed.
      ASSERT_EQ(r.exit_code, kKilled) << r.err;
    }
    if (!fs::exists(db())) continue;  // killed before the database was created
    store::ResultsStore st(db());
    ASSERT_EQ(st.integrity_check(), "ok");
    auto runs = st.reader().list_runs();
    ASSERT_LE(runs.size(), 1u);
    if (runs.empty()) continue;  // killed before the run was created
    run_id = runs[0].id;
    // The stored curve is gap-free from step 1, every point is the uninterrupted run's, and
    // nothing up to the newest checkpoint seen so far has gone.
    const Curve loss = curve(st, run_id, "loss");
    int64_t n = 0;
    for (const auto& [step, value] : loss) {
      ASSERT_EQ(step, ++n);
      ASSERT_EQ(value, expected.at("loss").at(step)) << "step " << step;
    }
    ASSERT_GE(n, committed) << "a resume deleted committed points";
    // Every recorded checkpoint is there and intact, and the newest is never behind a committed
    // one.
    for (const auto& c : st.reader().list_checkpoints(run_id)) {
      ASSERT_TRUE(fs::path(c.path).is_absolute()) << c.path;
      ASSERT_TRUE(fs::exists(c.path)) << c.path;
      ASSERT_EQ(xxh64_hex(c.path), c.hash) << c.path;
      committed = std::max(committed, c.step);
    }
    if (auto latest = st.reader().latest_checkpoint(run_id)) ASSERT_GE(latest->step, committed);
  }
  ASSERT_GT(run_id, 0);
  ASSERT_EQ(committed, 44) << "the storm did not reach the last checkpoint";

  auto r = resume(run_id);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  store::ResultsStore st(db());
  EXPECT_EQ(st.integrity_check(), "ok");
  EXPECT_EQ(st.reader().get_run(run_id).status, store::RunStatus::kFinished);
  // Loss, validation loss and expert loads equal the uninterrupted run's, bit for bit.
  const auto got = timing_free_curves(st, run_id);
  for (const auto& [metric, values] : expected) {
    ASSERT_TRUE(got.count(metric)) << metric;
    EXPECT_EQ(got.at(metric), values) << metric;
  }
  // keep_checkpoints 1: exactly the last checkpoint is left, with no temporary or stray file.
  auto ckpts = st.reader().list_checkpoints(run_id);
  ASSERT_EQ(ckpts.size(), 1u);
  EXPECT_EQ(ckpts[0].step, 44);
  EXPECT_EQ(xxh64_hex(ckpts[0].path), ckpts[0].hash);
  EXPECT_EQ(folder_files(fs::path(ckpts[0].path).parent_path()),
            (std::set<std::string>{"step-00000044.pt"}));
}

TEST_F(ResumeFaults, DamagedCheckpointIsRefusedByNameAndLatestValidRecovers) {
  const fs::path exp = write_experiment(14, 3);
  const auto expected = reference(exp);
  const int64_t run = interrupted_run(exp, 10);  // checkpoints at steps 4 and 8
  std::vector<store::CheckpointRow> before;
  size_t points_before = 0;
  {
    store::ResultsStore st(db());
    before = st.reader().list_checkpoints(run);
    points_before = st.reader().points(run, "loss").size();
  }
  ASSERT_EQ(before.size(), 2u);
  const std::string newest = before.back().path;
  {
    // One flipped bit in the middle of the file.
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(newest) / 2));
    char byte = 0;
    f.get(byte);
    f.seekp(static_cast<std::streamoff>(fs::file_size(newest) / 2));
    f.put(static_cast<char>(byte ^ 0x10));
  }
  // The default refuses, naming the file, in every progress mode; the run is untouched.
  for (const char* progress : {"none", "jsonl"}) {
    SCOPED_TRACE(progress);
    auto r = resume(run, {"--progress", progress});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(newest), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("damaged"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--resume-from latest-valid"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Exception"), std::string::npos) << r.err;
    store::ResultsStore st(db());
    EXPECT_EQ(st.reader().points(run, "loss").size(), points_before);
    EXPECT_EQ(st.reader().list_checkpoints(run).size(), 2u);
    EXPECT_EQ(st.reader().get_run(run).error_text, "");
  }
  // Asked for, the newest intact checkpoint (step 4) is used, and the run ends on the curve.
  auto r = resume(run, {"--resume-from", "latest-valid"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(newest), std::string::npos) << "the skipped file is not named: " << r.err;
  EXPECT_NE(r.err.find("step 4"), std::string::npos) << r.err;
  store::ResultsStore st(db());
  EXPECT_EQ(st.reader().get_run(run).status, store::RunStatus::kFinished);
  EXPECT_EQ(curve(st, run, "loss"), expected.at("loss"));
  EXPECT_EQ(curve(st, run, "val_loss"), expected.at("val_loss"));
  for (const auto& c : st.reader().list_checkpoints(run))
    EXPECT_EQ(xxh64_hex(c.path), c.hash) << c.path;
}

TEST_F(ResumeFaults, MissingCheckpointIsRefusedWithoutDeletingPointsAndRestartIsExplicit) {
  const fs::path exp = write_experiment(14, 3);
  const auto expected = reference(exp);
  const int64_t run = interrupted_run(exp, 10);
  std::string newest;
  size_t points_before = 0;
  {
    store::ResultsStore st(db());
    newest = st.reader().latest_checkpoint(run)->path;
    points_before = st.reader().points(run, "loss").size();
  }
  ASSERT_GE(points_before, 8u);
  fs::remove(newest);
  auto r = resume(run);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(newest), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--restart"), std::string::npos) << r.err;
  {
    store::ResultsStore st(db());
    EXPECT_EQ(st.reader().points(run, "loss").size(), points_before)
        << "the refused resume lost points";
    EXPECT_EQ(st.reader().list_checkpoints(run).size(), 2u);
  }
  // A file that is not there is refused by name too.
  r = resume(run, {"--checkpoint", (dir_ / "nowhere.pt").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("nowhere.pt"), std::string::npos) << r.err;
  // Starting again from step 0 is a choice the user makes, and ends on the same curve.
  r = resume(run, {"--restart"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("step 0"), std::string::npos) << r.err;
  store::ResultsStore st(db());
  EXPECT_EQ(st.reader().get_run(run).status, store::RunStatus::kFinished);
  EXPECT_EQ(curve(st, run, "loss"), expected.at("loss"));
  for (const auto& c : st.reader().list_checkpoints(run)) EXPECT_TRUE(fs::exists(c.path)) << c.path;
}

TEST_F(ResumeFaults, ResumeFromAnotherFolderKeepsTheRunsRelativeCheckpointFolder) {
  const fs::path exp = write_experiment(14, 3);
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  auto r = mmlab({"train", exp.string(), "--progress", "none", "--checkpoint-dir", "ckpts"},
                 "step:10", dir_ / "a");
  ASSERT_EQ(r.exit_code, kKilled) << r.err;
  int64_t run = 0;
  std::string uuid;
  {
    store::ResultsStore st(db());
    auto row = st.reader().list_runs().at(0);
    run = row.id;
    uuid = row.uuid;
    ASSERT_EQ(st.reader().list_checkpoints(run).size(), 2u);
  }
  // From another working directory, without repeating --checkpoint-dir; its uuid's prefix names it.
  std::vector<std::string> args = {"train", "--resume", uuid.substr(0, 8), "--progress", "none"};
  r = mmlab(args, "", dir_ / "b");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  store::ResultsStore st(db());
  EXPECT_EQ(st.reader().get_run(run).status, store::RunStatus::kFinished);
  EXPECT_EQ(st.reader().points(run, "loss").size(), 14u);
  const fs::path folder = fs::absolute(dir_ / "a" / "ckpts" / uuid);
  for (const auto& c : st.reader().list_checkpoints(run)) {
    EXPECT_EQ(fs::path(c.path).parent_path(), folder) << c.path;
  }
  EXPECT_FALSE(fs::exists(dir_ / "b" / "ckpts"));
  EXPECT_FALSE(fs::exists(dir_ / "xdg" / "mmlab" / "checkpoints" / uuid));
}

TEST_F(ResumeFaults, EveryRefusalAndFailureIsOneSentenceOnStderr) {
  const fs::path exp = write_experiment(8, 2);
  const fs::path a_file = dir_ / "a-file";
  std::ofstream(a_file) << "x";
  struct Case {
    const char* name;
    std::vector<std::string> args;
    int exit_code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"steps 0", {"train", exp.string(), "--steps", "0"}, 2, "--steps must be a positive"},
      {"steps -5", {"train", exp.string(), "--steps", "-5"}, 2, "not -5"},
      {"checkpoint without resume",
       {"train", exp.string(), "--checkpoint", "x.pt"},
       2,
       "--checkpoint only applies to --resume"},
      {"checkpoint dir is a file",
       {"train", exp.string(), "--checkpoint-dir", (a_file / "sub").string()},
       3,
       "a-file/sub"},
      {"unwritable checkpoint dir",
       {"train", exp.string(), "--checkpoint-dir", "/proc/mmlab-test"},
       3,
       "The checkpoint folder /proc/mmlab-test"},
      {"unknown uuid prefix", {"train", "--resume", "abcdef12"}, 3, "abcdef12"},
  };
  // The uuid case needs a database without that run (a missing database is its own refusal).
  { store::ResultsStore created(db()); }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto args = c.args;
    args.insert(args.end(), {"--progress", "none"});
    auto r = mmlab(args);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
    EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // None of them trained: no run was left behind.
  if (fs::exists(db())) {
    store::ResultsStore st(db());
    EXPECT_TRUE(st.reader().list_runs().empty());
  }
  // A diverged run says so on stderr in the jsonl mode too. NaN weights after step 8, a
  // checkpoint step whose loss was still finite: that checkpoint is not written, and the one
  // kept and named is step 4's.
  const fs::path longer = write_experiment(12, 3);
  auto env = env_;
  env["MMLAB_TEST_NAN_AT"] = "8";
  auto r = run_in({"train", longer.string(), "--db", db(), "--progress", "jsonl"}, env, dir_.path(),
                  dir_.path());
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("diverged"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step-00000004.pt"), std::string::npos) << r.err;
  store::ResultsStore st(db());
  const auto run = st.reader().list_runs().at(0);
  EXPECT_EQ(run.status, store::RunStatus::kDiverged);
  EXPECT_EQ(st.reader().latest_checkpoint(run.id)->step, 4);
}

// The signals a process blocks, from /proc/PID/status (0 when it cannot be read).
unsigned long long blocked_signals(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("SigBlk:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

// The state letter of /proc/PID/stat ('T' when stopped), or 0 once the process is gone.
char process_state(pid_t pid) {
  const std::string stat = test::slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

// mmlab restarts itself with its threading settings at once; a SIGTERM while the restarted image
// loads its libraries used to end it by the default action (exit by signal, no stop handling).
// The restarted image holds SIGTERM blocked from the exec until its handlers are in place; the
// test stops it at the end of that window (a fault point), so the signal lands inside it on any
// machine, however loaded (polling for the window let it pass by on 2 busy cores).
TEST_F(ResumeFaults, SigtermDuringStartUpIsAStopRequest) {
  const fs::path exp = write_experiment(8, 2);
  auto env = env_;
  env["MMLAB_TEST_STOP_AT"] = "start-up-signals-blocked";
  pid_t pid = test::spawn_mmlab({"train", exp.string(), "--db", db(), "--progress", "none"}, env,
                                (dir_ / "out.txt").string(), (dir_ / "err.txt").string());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (process_state(pid) != 'T' && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (process_state(pid) != 'T') {
    ::kill(pid, SIGKILL);
    test::wait_exit(pid);
    FAIL() << "mmlab never stopped at its start-up fault point: " << test::slurp(dir_ / "err.txt");
  }
  EXPECT_NE(test::slurp("/proc/" + std::to_string(pid) + "/environ").find("MMLAB_THREADING_SET="),
            std::string::npos)
      << "stopped in the first image, not the restarted one";
  EXPECT_NE(blocked_signals(pid) & (1ull << (SIGTERM - 1)), 0u)
      << "SIGTERM is not blocked during start-up";
  ::kill(pid, SIGTERM);
  ::kill(pid, SIGCONT);
  EXPECT_EQ(test::wait_exit(pid), 0) << test::slurp(dir_ / "err.txt");
  if (fs::exists(db())) {
    store::ResultsStore st(db());
    // Stopped in training, or — stopped before it began — still queued for the next launch.
    for (const auto& r : st.reader().list_runs()) {
      EXPECT_TRUE(r.status == store::RunStatus::kStopped || r.status == store::RunStatus::kQueued)
          << store::to_string(r.status);
    }
  }
}

}  // namespace
}  // namespace mmlab
