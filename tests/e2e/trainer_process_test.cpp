// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab` as a process: a tiny run learns; SIGKILL at random moments never corrupts the database
// and the run resumes; two trainers and a reader share one database; bad input gives one sentence
// and the documented exit code.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/config/config_fields.h"
#include "core/store/store.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

class TrainerProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_synthetic_corpus(dir_ / "corpus");
    env_ = {{"XDG_DATA_HOME", (dir_ / "xdg").string()}};
  }

  fs::path write_experiment(int64_t steps, int checkpoint_every, const std::string& runs_json) {
    nlohmann::json ex = {{"name", "e2e"},
                         {"defaults",
                          {{"model",
                            {{"d_model", 32},
                             {"n_block", 1},
                             {"head_dim", 16},
                             {"n_expert", 4},
                             {"d_expert", 64},
                             {"d_state", 8}}},
                           {"train",
                            {{"steps", steps},
                             {"batch_size", 8},
                             {"seq_len", 48},
                             {"lr", 3e-3},
                             {"eval_every", 50},
                             {"eval_batches", 4},
                             {"checkpoint_every", checkpoint_every},
                             {"threads", 1}}},
                           {"data",
                            {{"source", (dir_ / "corpus").string()},
                             {"tokenizer", "byte"},
                             {"val_fraction", 0.2}}}}},
                         {"runs", nlohmann::json::parse(runs_json)}};
    const fs::path p = dir_ / "experiment.json";
    std::ofstream(p) << ex.dump(2);
    return p;
  }

  std::string db() const { return (dir_ / "results.sqlite").string(); }

  test::TempDir dir_;
  std::map<std::string, std::string> env_;
};

// Unigram entropy (nats) of the corpus's bytes: what a model that ignores context achieves.
double unigram_entropy(const fs::path& corpus) {
  std::vector<double> counts(256, 0);
  double total = 0;
  for (const auto& e : fs::directory_iterator(corpus)) {
    for (unsigned char ch : test::slurp(e.path())) {
      counts[ch] += 1;
      total += 1;
    }
  }
  double h = 0;
  for (double c : counts) {
    if (c > 0) h -= c / total * std::log(c / total);
  }
  return h;
}

TEST_F(TrainerProcess, TinyRunLearnsAndStreamsTheProtocol) {
  auto exp =
      write_experiment(150, 0, R"([{"name": "moe-mamba", "model": {"family": "moe-mamba"}}])");
  auto r = test::run_mmlab({"train", exp.string(), "--db", db(), "--progress", "jsonl"}, env_,
                           dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int steps = 0;
  double last_val = NAN;
  std::string last_status;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("run_id") && j.contains("wall")) << line;
    if (j["event"] == "step") ++steps;
    if (j["event"] == "eval") last_val = j["metrics"]["val_loss"].get<double>();
    if (j["event"] == "status") last_status = j["status"];
  }
  EXPECT_EQ(steps, 150);
  EXPECT_EQ(last_status, "finished");
  const double entropy = unigram_entropy(dir_ / "corpus");
  EXPECT_LT(last_val, entropy - 0.3) << "unigram entropy " << entropy;
  store::ResultsStore st(db());
  auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, store::RunStatus::kFinished);
  ASSERT_TRUE(runs[0].best_val_loss.has_value());
  EXPECT_NEAR(*runs[0].best_val_loss, last_val, 0.5);
}

// Polls the database until the trainer `pid` has created its run (or exited); 2 minutes at most.
void wait_for_first_run(pid_t pid, const std::string& db) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline && ::kill(pid, 0) == 0) {
    if (fs::exists(db) && !store::ResultsStore(db).reader().list_runs().empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST_F(TrainerProcess, SigkillAtRandomMomentsNeverCorruptsAndResumeContinues) {
  auto exp = write_experiment(100000, 3, R"([{"name": "mamba", "model": {"family": "mamba"}}])");
  std::mt19937 rng(20261128);
  std::uniform_int_distribution<int> delay_ms(400, 2500);
  int64_t run_id = 0, last_step = 0;
  for (int kill = 0; kill < 20; ++kill) {
    std::vector<std::string> args =
        run_id == 0
            ? std::vector<std::string>{"train", exp.string(), "--db", db(), "--progress", "none"}
            : std::vector<std::string>{
                  "train", "--resume", std::to_string(run_id), "--db", db(), "--progress", "none"};
    pid_t pid = test::spawn_mmlab(args, env_, dir_ / "out.txt", dir_ / "err.txt");
    // The delays are drawn from when the run exists once half the kills found none: on a loaded
    // machine start-up (process, LibTorch, data) can outlast every delay, and the test must
    // still kill runs that train, not only processes that start.
    if (run_id == 0 && kill >= 10) wait_for_first_run(pid, db());
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(pid, SIGKILL);
    const int rc = test::wait_exit(pid);
    ASSERT_TRUE(rc == -SIGKILL || rc == 0)
        << "kill " << kill << ": " << test::slurp(dir_ / "err.txt");
    if (!fs::exists(db())) continue;  // killed before the database was created
    store::ResultsStore st(db());
    ASSERT_EQ(st.integrity_check(), "ok") << "after kill " << kill;
    auto runs = st.reader().list_runs();
    if (runs.empty()) continue;  // killed while preparing the data
    run_id = runs[0].id;
    // Points are never ahead of a gap: steps 1..n, each once.
    auto pts = st.reader().points(run_id, "loss");
    for (size_t i = 0; i < pts.size(); ++i) ASSERT_EQ(pts[i].step, static_cast<int64_t>(i + 1));
    last_step = pts.empty() ? 0 : pts.back().step;
  }
  ASSERT_GT(run_id, 0);
  // A last resume, stopped gracefully: it continues from the last checkpoint, exits 0, and the
  // curve stays gap-free.
  pid_t pid = test::spawn_mmlab(
      {"train", "--resume", std::to_string(run_id), "--db", db(), "--progress", "none"}, env_,
      dir_ / "out.txt", dir_ / "err.txt");
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  ::kill(pid, SIGTERM);
  ASSERT_EQ(test::wait_exit(pid), 0) << test::slurp(dir_ / "err.txt");
  store::ResultsStore st(db());
  EXPECT_EQ(st.integrity_check(), "ok");
  auto row = st.reader().get_run(run_id);
  EXPECT_EQ(row.status, store::RunStatus::kStopped);
  auto pts = st.reader().points(run_id, "loss");
  for (size_t i = 0; i < pts.size(); ++i) ASSERT_EQ(pts[i].step, static_cast<int64_t>(i + 1));
  EXPECT_GE(pts.back().step, last_step - 3) << "resume went back further than one checkpoint";
}

TEST_F(TrainerProcess, TwoTrainersAndAReaderShareOneDatabase) {
  auto exp = write_experiment(60, 0,
                              R"([{"name": "a", "model": {"family": "mamba"}},
                                  {"name": "b", "model": {"family": "transformer", "d_ff": 64}}])");
  pid_t a =
      test::spawn_mmlab({"train", exp.string(), "--run", "a", "--db", db(), "--progress", "none"},
                        env_, dir_ / "a.out", dir_ / "a.err");
  pid_t b =
      test::spawn_mmlab({"train", exp.string(), "--run", "b", "--db", db(), "--progress", "none"},
                        env_, dir_ / "b.out", dir_ / "b.err");
  // Read while they write: never blocked for long, never an error.
  int reads = 0;
  int status_a = -1, status_b = -1;
  while (status_a < 0 || status_b < 0) {
    if (fs::exists(db())) {
      try {
        store::ResultsStore reader(db(), store::OpenOptions{store::Database::Mode::kReadOnly});
        for (const auto& r : reader.reader().list_runs()) reader.reader().points(r.id, "loss");
        ++reads;
      } catch (const UserError& e) {
        // The file may exist before its schema does.
        EXPECT_NE(std::string(e.what()).find("results database"), std::string::npos) << e.what();
      }
    }
    int st = 0;
    if (status_a < 0 && ::waitpid(a, &st, WNOHANG) == a) status_a = WEXITSTATUS(st);
    if (status_b < 0 && ::waitpid(b, &st, WNOHANG) == b) status_b = WEXITSTATUS(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(status_a, 0) << test::slurp(dir_ / "a.err");
  ASSERT_EQ(status_b, 0) << test::slurp(dir_ / "b.err");
  EXPECT_GT(reads, 5);
  store::ResultsStore st(db());
  EXPECT_EQ(st.integrity_check(), "ok");
  auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& r : runs) {
    EXPECT_EQ(r.status, store::RunStatus::kFinished) << r.name;
    EXPECT_EQ(st.reader().points(r.id, "loss").size(), 60u) << r.name;
  }
}

TEST_F(TrainerProcess, ParallelTrainsEachRunInItsOwnProcess) {
  auto exp = write_experiment(
      15, 0, R"([{"name": "p", "model": {"family": "mamba"}, "seeds": [1, 2, 3]}])");
  auto r = test::run_mmlab(
      {"train", exp.string(), "--parallel", "2", "--db", db(), "--progress", "none"}, env_,
      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  store::ResultsStore st(db());
  auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 3u);
  std::set<int64_t> pids;
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, store::RunStatus::kFinished) << run.name;
    EXPECT_EQ(st.reader().points(run.id, "loss").size(), 15u) << run.name;
    pids.insert(run.pid);
  }
  EXPECT_EQ(pids.size(), 3u);  // one process per run
  // Seeds differ, so the curves differ.
  EXPECT_NE(st.reader().points(runs[0].id, "loss")[0].value,
            st.reader().points(runs[1].id, "loss")[0].value);
}

TEST_F(TrainerProcess, ValidateRefusesExactlyWhatTrainRefuses) {
  // val_fraction 0.7 once passed `validate` and then failed `train`: both read the data section
  // with the corpus's rules now, and say the same thing.
  const fs::path file = write_experiment(2, 0, R"([{"name": "r", "model": {"family": "mamba"},
      "data": {"val_fraction": 0.7}}])");
  const std::string problem =
      "$.runs[0].data.val_fraction: must be between 0 and 0.5 (e.g. 0.05; 0 = no validation), "
      "got 0.7.";
  auto v = test::run_mmlab({"validate", file.string()}, env_, dir_.path());
  EXPECT_EQ(v.exit_code, kExitBadInput) << v.err;
  EXPECT_NE(v.err.find(problem), std::string::npos) << v.err;
  auto t = test::run_mmlab({"train", file.string(), "--db", db(), "--progress", "none"}, env_,
                           dir_.path());
  EXPECT_EQ(t.exit_code, kExitBadInput) << t.err;
  EXPECT_NE(t.err.find(problem), std::string::npos) << t.err;
  EXPECT_FALSE(fs::exists(db()));  // refused before anything was created
}

// `mmlab validate --fields` is the field declaration itself: one line per field with its key,
// default, rule and meaning, so what it prints is what validate and train check.
TEST_F(TrainerProcess, ValidateFieldsPrintsEveryDeclaredFieldWithItsDefaultAndRule) {
  auto v = test::run_mmlab({"validate", "--fields"}, env_, dir_.path());
  ASSERT_EQ(v.exit_code, 0) << v.err;
  std::map<std::string, std::string> lines;  // key -> rest of its line
  std::istringstream in(v.out);
  for (std::string line; std::getline(in, line);) {
    const auto space = line.find(' ');
    lines[line.substr(0, space)] = line.substr(space);
  }
  const auto declared = run_config_fields();
  EXPECT_EQ(lines.size(), declared.size()) << v.out;
  for (const FieldInfo& f : declared) {
    ASSERT_TRUE(lines.count(f.key)) << f.key << "\n" << v.out;
    const std::string& rest = lines[f.key];
    EXPECT_NE(rest.find(" " + f.default_value.dump() + " "), std::string::npos) << f.key << rest;
    EXPECT_NE(rest.find(f.doc), std::string::npos) << f.key << rest;
    if (!f.rule.describe().empty()) {
      EXPECT_NE(rest.find(f.rule.describe()), std::string::npos) << f.key << rest;
    }
  }
  EXPECT_NE(lines["train.lr"].find(" 0.001 "), std::string::npos) << lines["train.lr"];
  EXPECT_NE(lines["train.lr"].find("> 0"), std::string::npos) << lines["train.lr"];
  // Without a file and without --fields: one sentence, usage exit.
  auto none = test::run_mmlab({"validate"}, env_, dir_.path());
  EXPECT_EQ(none.exit_code, kExitUsage) << none.err;
  EXPECT_NE(none.err.find("mmlab validate needs an experiment file."), std::string::npos)
      << none.err;
}

TEST_F(TrainerProcess, DocumentedDataKeysAreHonoured) {
  // A JSON Lines corpus whose text is under "body", paragraphs, no token cache: with text_field
  // ignored the reader would find no "text" member; with cache ignored a cache file would appear.
  const fs::path corpus = dir_ / "body.jsonl";
  {
    std::ofstream out(corpus);
    for (const auto& e : fs::directory_iterator(dir_ / "corpus"))
      out << nlohmann::json{{"body", test::slurp(e.path())}}.dump() << "\n";
  }
  const fs::path file = write_experiment(2, 0,
                                         R"([{"name": "r", "model": {"family": "mamba"},
      "data": {"source": ")" + corpus.string() +
                                             R"(", "text_field": "body", "cache": false,
      "split": "blank_lines"}}])");
  auto v = test::run_mmlab({"validate", file.string()}, env_, dir_.path());
  EXPECT_EQ(v.exit_code, 0) << v.err;
  auto t = test::run_mmlab({"train", file.string(), "--db", db(), "--progress", "none"}, env_,
                           dir_.path());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_FALSE(fs::exists(dir_ / "xdg" / "mmlab" / "cache"));
  store::ResultsStore st(db());
  const auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  const auto config = nlohmann::json::parse(runs[0].config_json);
  EXPECT_EQ(config["data"]["text_field"], "body");
  EXPECT_EQ(config["data"]["cache"], false);
}

// The issue's Ctrl-C case: stopping a multi-run `mmlab train` stops the run in training (with a
// checkpoint) and leaves the runs that never started queued in the database, with a hint; the
// same command again continues the experiment, saying so in one line, and every run ends with
// each step stored once.
TEST_F(TrainerProcess, StoppingAMultiRunTrainLeavesTheRestQueuedAndTheSameCommandContinues) {
  auto exp = write_experiment(400, 0,
                              R"([{"name": "a", "model": {"family": "mamba"}},
                                  {"name": "b", "model": {"family": "mamba"}, "seed": 2},
                                  {"name": "c", "model": {"family": "mamba"}, "seed": 3}])");
  const std::vector<std::string> args = {"train", exp.string(), "--db", db(), "--progress", "none"};
  pid_t pid = test::spawn_mmlab(args, env_, dir_ / "out.txt", dir_ / "err.txt");
  // Every row exists from the launch on; wait until run a has stored points (it is training).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool training = false;
  while (!training && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!fs::exists(db())) continue;
    try {
      store::ResultsStore st(db(), store::OpenOptions{store::Database::Mode::kReadOnly});
      auto runs = st.reader().list_runs();
      training = runs.size() == 3 && !st.reader().points(runs[0].id, "loss").empty();
    } catch (const UserError&) {
      // The file may exist before its schema does.
    }
  }
  ASSERT_TRUE(training) << test::slurp(dir_ / "err.txt");
  ::kill(pid, SIGINT);
  ASSERT_EQ(test::wait_exit(pid), 0) << test::slurp(dir_ / "err.txt");
  const std::string err = test::slurp(dir_ / "err.txt");
  EXPECT_NE(err.find("mmlab: 2 runs stay queued; `mmlab train " + exp.string() + " --db " + db() +
                     "` continues the experiment."),
            std::string::npos)
      << err;
  {
    store::ResultsStore st(db());
    auto runs = st.reader().list_runs();
    ASSERT_EQ(runs.size(), 3u);
    EXPECT_EQ(runs[0].status, store::RunStatus::kStopped);
    EXPECT_EQ(runs[1].status, store::RunStatus::kQueued);
    EXPECT_EQ(runs[2].status, store::RunStatus::kQueued);
    EXPECT_EQ(runs[1].total_steps, 400);
  }

  auto r = test::run_mmlab(args, env_, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("mmlab: Continuing experiment e2e in " + db() +
                       ": 1 stopped run to resume, 2 queued runs to start.\n"),
            std::string::npos)
      << r.err;
  store::ResultsStore st(db());
  auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 3u) << "the second command made no new rows";
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, store::RunStatus::kFinished) << run.name;
    auto pts = st.reader().points(run.id, "loss");
    ASSERT_EQ(pts.size(), 400u) << run.name;
    for (size_t i = 0; i < pts.size(); ++i) ASSERT_EQ(pts[i].step, int64_t(i + 1)) << run.name;
  }
  // A third time there is nothing left to do, and a 200-step file under the same name is refused.
  r = test::run_mmlab(args, env_, dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("3 finished runs skipped."), std::string::npos) << r.err;
  auto shorter = write_experiment(200, 0, R"([{"name": "a", "model": {"family": "mamba"}}])");
  r = test::run_mmlab({"train", shorter.string(), "--db", db(), "--progress", "none"}, env_,
                      dir_.path());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("train.steps is 200 here but 400 in the database"), std::string::npos)
      << r.err;
  EXPECT_EQ(st.reader().list_runs().size(), 3u);
}

struct BadInput {
  const char* name;
  const char* experiment;  // file contents; "" = no file
  std::vector<std::string> extra;
  int exit_code;
  const char* message;
};

TEST_F(TrainerProcess, BadInputGivesOneSentenceAndTheExitCode) {
  const std::string corpus = (dir_ / "corpus").string();
  const std::string good = R"({"name": "x", "runs": [{"name": "r", "model": {"family": "mamba",
      "d_model": 32, "n_block": 1}, "train": {"steps": 5, "batch_size": 2, "seq_len": 16},
      "data": {"source": ")" +
                           corpus + R"(", "tokenizer": "byte"}}]})";
  const std::string no_data = R"({"name": "x", "runs": [{"name": "r", "model": {"family": "mamba"},
      "data": {"source": "/nonexistent/corpus", "tokenizer": "byte"}}]})";
  // A database of a newer schema.
  const std::string newer_db = (dir_ / "newer.sqlite").string();
  {
    sqlite3* h = nullptr;
    sqlite3_open(newer_db.c_str(), &h);
    sqlite3_exec(h, "PRAGMA user_version = 99; CREATE TABLE t(x);", nullptr, nullptr, nullptr);
    sqlite3_close(h);
  }
  const std::vector<BadInput> cases = {
      {"malformed",
       "{\"name\": \"x\", \"runs\": [",
       {},
       3,
       "bad.json:1:24: not valid JSON: the text ends inside the list that opens at 1:23; expected "
       "a value or ']'."},
      {"unknown key",
       R"({"name": "x", "runs": [{"name": "r", "model": {"famly": "mamba"}}]})",
       {},
       3,
       "$.runs[0].model.famly: unknown key"},
      {"wrong type",
       R"({"name": "x", "runs": [{"name": "r", "train": {"steps": "ten"}}]})",
       {},
       3,
       "$.runs[0].train.steps: must be an integer"},
      {"warmup > steps",
       R"({"name": "x", "runs": [{"name": "r", "train": {"warmup_frac": 1.5}}]})",
       {},
       3,
       "warmup_frac"},
      {"batch 0",
       R"({"name": "x", "runs": [{"name": "r", "train": {"batch_size": 0}}]})",
       {},
       3,
       "batch_size: must be > 0"},
      {"seq_len 0",
       R"({"name": "x", "runs": [{"name": "r", "train": {"seq_len": 0}}]})",
       {},
       3,
       "seq_len: must be > 0"},
      {"missing file", "", {}, 3, "does not exist"},
      {"missing dataset", no_data.c_str(), {}, 3, "/nonexistent/corpus"},
      {"unwritable db",
       good.c_str(),
       {"--db", "/proc/mmlab-test/results.sqlite"},
       3,
       "/proc/mmlab-test"},
      {"newer schema", good.c_str(), {"--db", newer_db}, 3, "newer"},
      {"no gpu", good.c_str(), {"--device", "cuda"}, 4, "CUDA"},
      {"resume unknown", "", {"--resume", "77"}, 3, "No run 77"},
  };
  // "resume unknown" needs an existing database (a missing one is refused as missing).
  { store::ResultsStore create(db()); }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    if (std::string(c.name) == "no gpu" && test::cuda_available()) continue;
    std::vector<std::string> args = {"train"};
    const fs::path file = dir_ / "bad.json";
    fs::remove(file);
    if (*c.experiment) std::ofstream(file) << c.experiment;
    if (std::string(c.name) != "resume unknown") args.push_back(file.string());
    bool has_db = false;
    for (const auto& e : c.extra) has_db = has_db || e == "--db";
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    if (!has_db) args.insert(args.end(), {"--db", db()});
    args.insert(args.end(), {"--progress", "none"});
    auto r = test::run_mmlab(args, env_, dir_.path());
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind("mmlab: ", 0), 0u) << r.err;
  }
  // None of these left a run behind marked running.
  if (fs::exists(db())) {
    store::ResultsStore st(db());
    for (const auto& r : st.reader().list_runs())
      EXPECT_NE(r.status, store::RunStatus::kRunning) << r.name;
  }
}

}  // namespace
}  // namespace mmlab
