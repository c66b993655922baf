// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab runs`, `mmlab export` and `mmlab report` driven in-process through cli::run() against a
// database filled with the store API, checking printed values, files and exit codes.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "core/util/error.h"
#include "test_support.h"

namespace mmlab::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Swaps std::cout/std::cerr for string buffers while alive.
class CaptureStreams {
 public:
  CaptureStreams()
      : old_out_(std::cout.rdbuf(out_.rdbuf())), old_err_(std::cerr.rdbuf(err_.rdbuf())) {}
  ~CaptureStreams() {
    std::cout.rdbuf(old_out_);
    std::cerr.rdbuf(old_err_);
  }
  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

 private:
  std::ostringstream out_, err_;
  std::streambuf* old_out_;
  std::streambuf* old_err_;
};

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs 1 "mamba" and 2 "moe-mamba" (tag best, a note) in experiment "cmp"; run 3 "transformer"
// (failed) in "other"; run 4 "lost" (running, its process gone long ago) and run 5 "live" (running
// in this very process) in "other".
class RunsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_ / "results.sqlite";
    db_ = std::make_unique<store::ResultsStore>(db_path_);
    const int64_t cmp = db_->ensure_experiment("cmp");
    const int64_t other = db_->ensure_experiment("other");

    const int64_t mamba = add_run(cmp, "mamba", "mamba", {4.5, 4.0, 3.5});
    db_->writer(mamba).append_points({{"loss", 1, 100, 0.5, 4.6},
                                      {"loss", 2, 200, 1.0, 3.9},
                                      {"loss", 3, 300, 1.5, 3.4},
                                      {"val_loss", 2, 200, 1.0, 3.9},
                                      {"tokens_per_s", 3, 300, 1.5, 200.0}});
    ckpt_ = dir_ / "checkpoints" / db_->reader().get_run(mamba).uuid / "step-00000003.pt";
    fs::create_directories(ckpt_.parent_path());
    std::ofstream(ckpt_) << "weights";
    db_->writer(mamba).add_checkpoint(3, ckpt_.string(), 7, "abc123");
    db_->writer(mamba).set_status(store::RunStatus::kFinished);

    const int64_t moe = add_run(cmp, "moe-mamba", "moe-mamba", {4.0, 3.4, 3.0});
    db_->writer(moe).set_status(store::RunStatus::kFinished);
    db_->metadata().add_tag(moe, "best");
    db_->metadata().set_note(moe, "routing looks balanced");

    const int64_t tr = add_run(other, "transformer", "transformer", {5.0, 4.9, 4.8});
    db_->writer(tr).set_status(store::RunStatus::kFailed, "CUDA out of memory.");

    const int64_t lost = add_run(other, "lost", "mamba", {6.0});
    db_->database().exec("UPDATE runs SET heartbeat_at = 1 WHERE id = " + std::to_string(lost));
    const int64_t live = add_run(other, "live", "mamba", {6.0});
    db_->writer(live).mark_started(start(::getpid()));
  }

  static store::RunStart start(int64_t pid) {
    store::RunStart s;
    s.pid = pid;
    s.host = store::current_host();
    s.device = "cpu";
    s.params_active = 1000;
    s.params_total = 2000;
    return s;
  }

  // A run with loss_smooth at tokens 100, 200, … taking `losses`; left `running` with a dead pid.
  int64_t add_run(int64_t exp, const std::string& name, const std::string& family,
                  const std::vector<double>& losses) {
    store::NewRun nr;
    nr.experiment_id = exp;
    nr.name = name;
    nr.family = family;
    nr.total_steps = static_cast<int64_t>(losses.size());
    nr.config_json = R"({"model":{"d_model":64}})";
    const int64_t id = db_->create_run(nr);
    db_->writer(id).mark_started(start(0x7ffffff0));
    std::vector<store::MetricPoint> points;
    for (size_t i = 0; i < losses.size(); ++i) {
      const auto step = static_cast<int64_t>(i + 1);
      points.push_back(
          {"loss_smooth", step, 100 * step, 0.5 * static_cast<double>(step), losses[i]});
    }
    db_->writer(id).append_points(points);
    db_->writer(id).heartbeat(nr.total_steps, 100 * nr.total_steps);
    return id;
  }

  CliResult run(std::vector<std::string> args, bool with_db = true) {
    args.insert(args.begin(), "mmlab");
    if (with_db) {
      args.push_back("--db");
      args.push_back(db_path_.string());
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    CliResult r;
    CaptureStreams capture;
    r.code = cli::run(static_cast<int>(args.size()), argv.data());
    r.out = capture.out();
    r.err = capture.err();
    return r;
  }

  std::vector<int64_t> listed_ids(std::vector<std::string> args) {
    args.insert(args.begin(), {"runs", "list", "--format", "json"});
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<int64_t> ids;
    for (const auto& row : json::parse(r.out)) ids.push_back(row["id"].get<int64_t>());
    return ids;
  }

  test::TempDir dir_;
  fs::path db_path_;
  fs::path ckpt_;
  std::unique_ptr<store::ResultsStore> db_;
};

TEST_F(RunsCli, ListShowsEveryRunWithItsFigures) {
  const CliResult r = run({"runs", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 6u) << r.out;
  EXPECT_EQ(out[0].substr(0, 60), "id  experiment  name         family       status    step  to");
  // id, experiment, name, family, status, step/total, tokens, loss_smooth, best_val, tok/s, params
  EXPECT_TRUE(contains(out[1], " 1  cmp         mamba        mamba        finished   3/3"))
      << out[1];
  EXPECT_TRUE(contains(out[1], "300       3.5000    3.9000    200  1.00K/2.00K  ")) << out[1];
  EXPECT_TRUE(contains(out[2], "moe-mamba    moe-mamba    finished")) << out[2];
  EXPECT_TRUE(contains(out[3], "transformer  transformer  failed")) << out[3];
  EXPECT_TRUE(contains(out[4], "lost         mamba        lost")) << out[4];
  EXPECT_TRUE(contains(out[5], "live         mamba        running")) << out[5];
}

TEST_F(RunsCli, ListFilters) {
  EXPECT_EQ(listed_ids({}), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(listed_ids({"--experiment", "cmp"}), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(listed_ids({"--family", "mamba"}), (std::vector<int64_t>{1, 4, 5}));
  EXPECT_EQ(listed_ids({"--tag", "best"}), (std::vector<int64_t>{2}));
  EXPECT_EQ(listed_ids({"--status", "lost"}), (std::vector<int64_t>{4}));
  EXPECT_EQ(listed_ids({"--status", "running"}), (std::vector<int64_t>{5}));
  EXPECT_EQ(listed_ids({"--text", "MAMBA"}), (std::vector<int64_t>{1, 2, 4, 5}));
  EXPECT_EQ(listed_ids({"--text", "Moe"}), (std::vector<int64_t>{2}));
  EXPECT_EQ(listed_ids({"--experiment", "other", "--family", "transformer"}),
            (std::vector<int64_t>{3}));

  const CliResult none = run({"runs", "list", "--tag", "nothing"});
  EXPECT_EQ(none.code, 0);
  EXPECT_EQ(none.out, "No runs match in " + db_path_.string() + ".\n");

  const CliResult bad = run({"runs", "list", "--experiment", "nope"});
  EXPECT_EQ(bad.code, kExitBadInput);
  EXPECT_TRUE(contains(bad.err, "No experiment \"nope\"")) << bad.err;
  EXPECT_TRUE(contains(bad.err, "\"cmp\", \"other\"")) << bad.err;
  EXPECT_EQ(run({"runs", "list", "--status", "sleeping"}).code, kExitBadInput);
  EXPECT_EQ(run({"runs", "list", "--format", "xml"}).code, kExitUsage);
}

TEST_F(RunsCli, ListJsonHasTheSummaries) {
  const CliResult r = run({"runs", "list", "--format", "json", "--experiment", "cmp"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["name"], "mamba");
  EXPECT_EQ(rows[0]["status"], "finished");
  EXPECT_EQ(rows[0]["final_loss_smooth"], 3.5);
  EXPECT_EQ(rows[0]["best_val_loss"], 3.9);
  EXPECT_EQ(rows[0]["tokens"], 300);
  EXPECT_EQ(rows[1]["tags"], json::array({"best"}));
  EXPECT_TRUE(rows[1]["best_val_loss"].is_null());
}

TEST_F(RunsCli, ShowPrintsFieldsMetricsCheckpointsNoteAndConfig) {
  const CliResult r = run({"runs", "show", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "name:               mamba\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "status:             finished\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "final loss_smooth:  3.500000\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "best val_loss:      3.900000 at step 2\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "loss_smooth    3.5          3  3.5         3       3\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "   3    7B  abc123  " + ckpt_.string() + "\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "Config:\n{\n  \"model\": {\n    \"d_model\": 64\n  }\n}\n"))
      << r.out;

  const CliResult moe = run({"runs", "show", "2"});
  EXPECT_TRUE(contains(moe.out, "tags:               best\n")) << moe.out;
  EXPECT_TRUE(contains(moe.out, "Note:\nrouting looks balanced\n")) << moe.out;
  const CliResult failed = run({"runs", "show", "3"});
  EXPECT_TRUE(contains(failed.out, "Error:\nCUDA out of memory.\n")) << failed.out;
  const CliResult lost = run({"runs", "show", "4"});
  EXPECT_TRUE(contains(lost.out, "status:             lost (stored as running;")) << lost.out;

  // By uuid, as JSON.
  const CliResult js = run({"runs", "show", db_->reader().get_run(2).uuid, "--format", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  const json j = json::parse(js.out);
  EXPECT_EQ(j["id"], 2);
  EXPECT_EQ(j["note"], "routing looks balanced");
  EXPECT_EQ(j["config"]["model"]["d_model"], 64);
  EXPECT_EQ(j["summaries"][0]["metric"], "loss_smooth");
  EXPECT_EQ(j["summaries"][0]["min"], 3.0);
  EXPECT_EQ(run({"runs", "show", "1", "--format", "json"}).out.find("abc123") != std::string::npos,
            true);
}

TEST_F(RunsCli, UnknownRunIsBadInputNamingItAndTheFix) {
  const CliResult r = run({"runs", "show", "999"});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(r.out.empty());
  EXPECT_TRUE(contains(r.err, "No run 999")) << r.err;
  EXPECT_TRUE(contains(r.err, "mmlab runs list")) << r.err;

  const CliResult word = run({"runs", "show", "mamba"});
  EXPECT_EQ(word.code, kExitBadInput);
  EXPECT_TRUE(contains(word.err, "\"mamba\" is not a run id")) << word.err;
  EXPECT_EQ(run({"runs", "show"}).code, kExitUsage);
  EXPECT_EQ(run({"runs", "tag", "42", "x"}).code, kExitBadInput);
}

TEST_F(RunsCli, MissingDatabaseIsBadInputAndNotCreated) {
  const fs::path missing = dir_ / "nowhere.sqlite";
  const CliResult r = run({"runs", "list", "--db", missing.string()}, false);
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(contains(r.err, missing.string())) << r.err;
  // Commands that write do not create it either.
  for (std::vector<std::string> args : {std::vector<std::string>{"runs", "rm", "1", "--yes"},
                                        {"runs", "tag", "1", "x"},
                                        {"runs", "note", "1", "x"},
                                        {"export", "1"},
                                        {"report"}}) {
    args.push_back("--db");
    args.push_back(missing.string());
    EXPECT_EQ(run(args, false).code, kExitBadInput) << args[0] << " " << args[1];
  }
  EXPECT_FALSE(fs::exists(missing));
}

TEST_F(RunsCli, RmNeedsYesAndDeletesTheCheckpointFiles) {
  const CliResult refused = run({"runs", "rm", "1", "2"});
  EXPECT_EQ(refused.code, kExitBadInput);
  EXPECT_TRUE(contains(refused.err, "runs 1, 2")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "--yes")) << refused.err;
  EXPECT_TRUE(db_->reader().find_run(1).has_value());
  EXPECT_TRUE(db_->reader().find_run(2).has_value());
  EXPECT_TRUE(fs::exists(ckpt_));

  // One unknown id deletes nothing.
  EXPECT_EQ(run({"runs", "rm", "1", "77", "--yes"}).code, kExitBadInput);
  EXPECT_TRUE(db_->reader().find_run(1).has_value());

  // A live run is not deleted under its trainer.
  const CliResult live = run({"runs", "rm", "5", "--yes"});
  EXPECT_EQ(live.code, kExitBadInput);
  EXPECT_TRUE(contains(live.err, "Run 5 (live) is still running.")) << live.err;
  EXPECT_TRUE(db_->reader().find_run(5).has_value());

  const CliResult done = run({"runs", "rm", "1", "--yes"});
  ASSERT_EQ(done.code, 0) << done.err;
  EXPECT_EQ(done.out, "Deleted run 1 (mamba) and 1 checkpoint file.\n");
  EXPECT_FALSE(db_->reader().find_run(1).has_value());
  EXPECT_FALSE(fs::exists(ckpt_));
  EXPECT_FALSE(fs::exists(ckpt_.parent_path()));
  EXPECT_TRUE(db_->reader().find_run(2).has_value());
  EXPECT_EQ(listed_ids({"--experiment", "cmp"}), (std::vector<int64_t>{2}));
}

// A run training on a remote host that was away at the last contact: its heartbeat here is an
// hour old (far past lost_after_seconds), yet it is `unreachable`, never `lost`, in every view of
// `mmlab runs`, and it is not deleted; once a later contact got through, its rows decide again.
TEST_F(RunsCli, ARunOnAnUnreachableHostIsUnreachableNotLostHoweverOldItsHeartbeat) {
  const int64_t id = add_run(db_->ensure_experiment("far"), "away", "mamba", {6.0});
  store::RunStart elsewhere = start(4242);
  elsewhere.host = "gpu1-far-away";
  db_->writer(id).mark_started(elsewhere);
  db_->database().exec("UPDATE runs SET heartbeat_at = heartbeat_at - 3600 WHERE id = " +
                       std::to_string(id));
  ASSERT_EQ(db_->reader().get_run(id).effective_status, store::RunStatus::kLost);
  const std::string why = "The host gpu1 (ssh://me@gpu1) cannot be reached over ssh (timeout).";
  {
    auto book = remote::LaunchBook::load(db_path_);
    remote::Launch older;  // an earlier start that got through does not decide
    older.tag = "t0";
    older.host = "gpu1";
    older.uuid = db_->reader().get_run(id).uuid;
    remote::Launch l = older;
    l.tag = "t1";
    l.reachable = false;
    l.message = why;
    book.launches() = {older, l};
    book.save();
  }
  auto status_of = [&](int64_t run_id) {
    const CliResult r = run({"runs", "list", "--format", "json"});
    EXPECT_EQ(r.code, 0) << r.err;
    for (const auto& row : json::parse(r.out))
      if (row["id"] == run_id) return row["status"].get<std::string>();
    return std::string("(not listed)");
  };
  EXPECT_EQ(status_of(id), "unreachable");
  EXPECT_EQ(status_of(4), "lost") << "a lost local run stays lost";
  const CliResult table = run({"runs", "list", "--experiment", "far"});
  EXPECT_TRUE(contains(table.out, " unreachable ")) << table.out;
  EXPECT_FALSE(contains(table.out, "lost")) << table.out;
  EXPECT_EQ(listed_ids({"--status", "lost"}), (std::vector<int64_t>{4}));
  const CliResult show = run({"runs", "show", std::to_string(id)});
  EXPECT_TRUE(contains(show.out, "unreachable (stored as running; " + why + ")")) << show.out;
  const CliResult rm = run({"runs", "rm", std::to_string(id), "--yes"});
  EXPECT_EQ(rm.code, kExitBadInput);
  EXPECT_TRUE(contains(rm.err, "cannot be reached now")) << rm.err;
  EXPECT_TRUE(db_->reader().find_run(id).has_value());

  // A later start of the run reached its host: its rows decide again (here: lost).
  {
    auto book = remote::LaunchBook::load(db_path_);
    remote::Launch back = book.launches()[1];
    back.tag = "t2";
    back.reachable = true;
    back.message.clear();
    book.launches().push_back(back);
    book.save();
  }
  EXPECT_EQ(status_of(id), "lost");
}

// A uuid prefix of decimal digits only names the run whose uuid begins so, when no run has that
// number (the cause of a resume test failing about once in 43 runs).
TEST_F(RunsCli, AllDigitUuidPrefixNamesItsRunWhenNoRunHasThatNumber) {
  db_->database().exec("UPDATE runs SET uuid = '20321280' || substr(uuid, 9) WHERE id = 2");
  const CliResult r = run({"runs", "show", "20321280", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["id"], 2);
  EXPECT_EQ(json::parse(run({"runs", "show", "3", "--format", "json"}).out)["id"], 3)
      << "a number is a run's number first";
  const CliResult none = run({"runs", "show", "77"});
  EXPECT_EQ(none.code, kExitBadInput);
  EXPECT_TRUE(contains(none.err, "No run 77")) << none.err;
  const CliResult no_prefix = run({"runs", "show", "99999999"});
  EXPECT_EQ(no_prefix.code, kExitBadInput);
  EXPECT_TRUE(contains(no_prefix.err, "No run's uuid begins with 99999999")) << no_prefix.err;
}

TEST_F(RunsCli, TagAndNoteRoundTrip) {
  CliResult r = run({"runs", "tag", "1", "baseline", "paper"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Run 1 tags: baseline, paper\n");
  EXPECT_EQ(db_->reader().tags(1), (std::vector<std::string>{"baseline", "paper"}));
  EXPECT_EQ(listed_ids({"--tag", "paper"}), (std::vector<int64_t>{1}));

  r = run({"runs", "tag", "1", "paper", "--remove"});
  EXPECT_EQ(r.out, "Run 1 tags: baseline\n");
  EXPECT_EQ(db_->reader().tags(1), (std::vector<std::string>{"baseline"}));
  EXPECT_EQ(run({"runs", "tag", "1", " "}).code, kExitBadInput);  // an empty tag

  r = run({"runs", "note", "1", "lr too high?"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(db_->reader().note(1), "lr too high?");
  EXPECT_TRUE(contains(run({"runs", "show", "1"}).out, "Note:\nlr too high?\n"));
  r = run({"runs", "note", "1", ""});
  EXPECT_EQ(r.out, "Removed the note of run 1.\n");
  EXPECT_EQ(db_->reader().note(1), "");
}

TEST_F(RunsCli, ImportCopiesNewRunsOnce) {
  const fs::path other = dir_ / "other.sqlite";
  {
    store::ResultsStore o(other);
    store::NewRun nr;
    nr.experiment_id = o.ensure_experiment("remote");
    nr.name = "gpu-run";
    nr.family = "moe-mamba";
    o.create_run(nr);
  }
  CliResult r = run({"runs", "import", other.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Imported 1 run from " + other.string())) << r.out;
  EXPECT_EQ(listed_ids({"--experiment", "remote"}).size(), 1u);
  r = run({"runs", "import", other.string()});
  EXPECT_TRUE(contains(r.out, "Imported 0 runs from " + other.string() + " (1 already present)"))
      << r.out;
  EXPECT_EQ(run({"runs", "import", (dir_ / "missing.sqlite").string()}).code, kExitBadInput);
}

TEST_F(RunsCli, ExportCsvHasExactLines) {
  // --metric takes one value, so the run id may follow it.
  const CliResult r = run({"export", "--metric", "loss_smooth", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "run,metric,step,tokens,wall,value\n"
            "1,loss_smooth,1,100,0.5,4.5\n"
            "1,loss_smooth,2,200,1,4\n"
            "1,loss_smooth,3,300,1.5,3.5\n");

  // Every metric, by name then step; runs in the order given.
  const CliResult all = run({"export", "2", "1", "--format", "csv"});
  ASSERT_EQ(all.code, 0) << all.err;
  const auto out = lines(all.out);
  ASSERT_EQ(out.size(), 1u + 3 + 3 + 3 + 1 + 1);
  EXPECT_EQ(out[1], "2,loss_smooth,1,100,0.5,4");
  EXPECT_EQ(out[4], "1,loss,1,100,0.5,4.6");
  EXPECT_EQ(out[7], "1,loss_smooth,1,100,0.5,4.5");
  EXPECT_EQ(out[10], "1,tokens_per_s,3,300,1.5,200");
  EXPECT_EQ(out[11], "1,val_loss,2,200,1,3.9");
}

TEST_F(RunsCli, ExportExperimentAsJsonToAFile) {
  const fs::path file = dir_ / "curves.json";
  CliResult r = run({"export", "--experiment", "cmp", "--format", "json", "--metric", "loss_smooth",
                     "--out", file.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  const json j = json::parse(read(file));
  ASSERT_EQ(j.size(), 6u);
  EXPECT_EQ(j[0], json::parse(R"({"run":1,"metric":"loss_smooth","step":1,"tokens":100,)"
                              R"("wall":0.5,"value":4.5})"));
  EXPECT_EQ(j[5]["run"], 2);
  EXPECT_EQ(j[5]["value"], 3.0);
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_FALSE(contains(entry.path().filename().string(), ".tmp.")) << entry.path();
  }

  r = run({"export", "3", "--format", "jsonl", "--metric", "loss_smooth"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"run\":3,\"metric\":\"loss_smooth\",\"step\":1,\"tokens\":100,\"wall\":0.5,"
            "\"value\":5}\n"
            "{\"run\":3,\"metric\":\"loss_smooth\",\"step\":2,\"tokens\":200,\"wall\":1,"
            "\"value\":4.9}\n"
            "{\"run\":3,\"metric\":\"loss_smooth\",\"step\":3,\"tokens\":300,\"wall\":1.5,"
            "\"value\":4.8}\n");
}

TEST_F(RunsCli, ExportBadSelections) {
  EXPECT_EQ(run({"export"}).code, kExitUsage);
  EXPECT_EQ(run({"export", "1", "--experiment", "cmp"}).code, kExitUsage);
  EXPECT_EQ(run({"export", "1", "--format", "xlsx"}).code, kExitUsage);
  const CliResult metric = run({"export", "1", "--metric", "los"});
  EXPECT_EQ(metric.code, kExitBadInput);
  EXPECT_TRUE(contains(metric.err, "\"los\"")) << metric.err;
  EXPECT_TRUE(contains(metric.err, "loss, loss_smooth, tokens_per_s, val_loss")) << metric.err;
  EXPECT_EQ(run({"export", "--experiment", "nope"}).code, kExitBadInput);
  // An unwritable --out leaves nothing behind.
  const CliResult out = run({"export", "1", "--out", (dir_ / "no" / "such" / "f.csv").string()});
  EXPECT_EQ(out.code, kExitBadInput);
  EXPECT_TRUE(contains(out.err, "f.csv")) << out.err;
}

TEST_F(RunsCli, ReportMarkdownAndCsv) {
  CliResult r = run({"report", "--experiment", "cmp"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "## cmp\n\nBaseline: **mamba** (run 1).")) << r.out;
  // mamba ends at 3.5 after 300 tokens; moe-mamba is at 3.4 after 200: 1.5x.
  EXPECT_TRUE(contains(r.out, "| moe-mamba | moe-mamba |")) << r.out;
  EXPECT_TRUE(contains(r.out, "3.0000 |             – |            1.50× |")) << r.out;

  const fs::path file = dir_ / "report.csv";
  r = run({"report", "--format", "csv", "--baseline", "moe-mamba", "--experiment", "cmp", "--out",
           file.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto csv = lines(read(file));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[1], "cmp,1,mamba,mamba,finished,1000,2000,3,3,300,3.5,3.9,,0");
  EXPECT_EQ(csv[2], "cmp,2,moe-mamba,moe-mamba,finished,1000,2000,3,3,300,3,,1,1");

  // Default: every experiment with runs.
  r = run({"report"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "## cmp\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "## other\n")) << r.out;
  EXPECT_EQ(run({"report", "--baseline", "s4"}).code, kExitBadInput);
  EXPECT_EQ(run({"report", "--format", "html"}).code, kExitUsage);
}

}  // namespace
}  // namespace mmlab::cli
