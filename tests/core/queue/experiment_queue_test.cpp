// SPDX-License-Identifier: GPL-3.0-or-later
// A launched experiment's rows: queued at launch, continued on a second launch, refused when the
// same name means another config or a data source is missing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/queue/experiment_queue.h"
#include "test_support.h"

namespace mmlab::queue {
namespace {

using store::RunStatus;
using ::testing::HasSubstr;

class ExperimentQueue : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "corpus");
    std::ofstream(dir_ / "corpus" / "a.txt") << "some text";
  }
  Experiment experiment(int steps, const std::string& source = "") {
    const nlohmann::json doc = {
        {"name", "quick"},
        {"defaults",
         {{"model", {{"d_model", 32}, {"n_block", 1}, {"head_dim", 16}}},
          {"train", {{"steps", steps}, {"batch_size", 2}, {"seq_len", 16}}},
          {"data",
           {{"source", source.empty() ? (dir_ / "corpus").string() : source},
            {"tokenizer", "byte"}}}}},
        {"runs",
         {{{"name", "a"}, {"model", {{"family", "mamba"}}}},
          {{"name", "b"}, {"model", {{"family", "transformer"}}}},
          {{"name", "c"}, {"model", {{"family", "mamba"}}}}}}};
    return parse_experiment(doc, "test");
  }
  test::TempDir dir_;
  store::ResultsStore store_{dir_ / "results.sqlite"};
};

TEST_F(ExperimentQueue, EveryRunIsQueuedAtLaunchAndASecondLaunchContinuesIt) {
  const Experiment ex = experiment(20);
  LaunchPlan plan = queue_experiment(store_, ex, ex.runs);
  EXPECT_FALSE(plan.continuing);
  ASSERT_EQ(plan.runs.size(), 3u);
  for (const QueuedRun& q : plan.runs) {
    EXPECT_EQ(q.action, RunAction::kStart) << q.name;
    const store::RunRow row = store_.reader().get_run(q.run_id);
    EXPECT_EQ(row.status, RunStatus::kQueued);
    EXPECT_EQ(row.name, q.name);
    EXPECT_EQ(row.experiment, "quick");
    EXPECT_EQ(row.total_steps, 20);
    EXPECT_EQ(
        config_difference(ex.runs[0], store_.reader().get_run(plan.runs[0].run_id).config_json),
        "");
  }
  // a finished, b stopped, c still queued; the trainer resolved a's vocab_size meanwhile.
  const int64_t a = plan.runs[0].run_id, b = plan.runs[1].run_id, c = plan.runs[2].run_id;
  nlohmann::json resolved = nlohmann::json::parse(store_.reader().get_run(a).config_json);
  resolved["model"]["vocab_size"] = 256;
  resolved["train"]["device"] = "cuda:1";  // where it ran does not make it another run
  store_.writer(a).record_start_config(resolved.dump(), 20, "rev");
  store_.writer(a).set_status(RunStatus::kFinished);
  store_.writer(b).set_status(RunStatus::kStopped);

  plan = queue_experiment(store_, ex, ex.runs);
  EXPECT_TRUE(plan.continuing);
  ASSERT_EQ(plan.runs.size(), 3u);
  EXPECT_EQ(plan.runs[0].run_id, a);
  EXPECT_EQ(plan.runs[0].action, RunAction::kSkip);
  EXPECT_EQ(plan.runs[1].run_id, b);
  EXPECT_EQ(plan.runs[1].action, RunAction::kResume);
  EXPECT_EQ(plan.runs[2].run_id, c);
  EXPECT_EQ(plan.runs[2].action, RunAction::kStart);
  EXPECT_EQ(plan.to_train().size(), 2u);
  EXPECT_EQ(store_.reader().list_runs().size(), 3u) << "no second row for a run already there";
  EXPECT_EQ(plan.summary("db.sqlite"),
            "Continuing experiment quick in db.sqlite: 1 finished run skipped, 1 stopped run to "
            "resume, 1 queued run to start.");
}

TEST_F(ExperimentQueue, SameNameWithAnotherConfigIsRefusedAndNothingIsWritten) {
  const Experiment first = experiment(300);
  queue_experiment(store_, first, first.runs);
  const Experiment other = experiment(200);
  try {
    queue_experiment(store_, other, other.runs);
    FAIL() << "a 200-step launch under the name of a 300-step experiment was accepted";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("already has run a of experiment quick with another config "
                                    "(train.steps is 200 here but 300 in the database)"));
    EXPECT_THAT(e.what(), HasSubstr("new \"name\""));
  }
  EXPECT_EQ(store_.reader().list_runs().size(), 3u);
  for (const auto& r : store_.reader().list_runs()) EXPECT_EQ(r.total_steps, 300) << r.name;
}

TEST_F(ExperimentQueue, AMissingDataSourceIsRefusedBeforeAnyRowIsWritten) {
  const std::string missing = (dir_ / "no-such-corpus").string();
  const Experiment ex = experiment(20, missing);
  try {
    queue_experiment(store_, ex, ex.runs);
    FAIL() << "a missing corpus was accepted";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("The corpus " + missing + " does not exist."));
  }
  EXPECT_TRUE(store_.reader().list_runs().empty());
  EXPECT_TRUE(store_.reader().list_experiments().empty());
}

}  // namespace
TEST_F(ExperimentQueue, RunsQueuedForAHostRecordItAndKeepTheUuidsTheyAreGiven) {
  // The data folder is the host's: missing here, yet queued.
  const Experiment ex = experiment(20, (dir_ / "on-the-host").string());
  EXPECT_THROW(queue_experiment(store_, ex, ex.runs), UserError);  // for here: refused
  QueueOptions options;
  options.host = "gpu1";
  options.uuids["b"] = "0123456789abcdef0123456789abcdef";
  const LaunchPlan plan = queue_experiment(store_, ex, ex.runs, options);
  ASSERT_EQ(plan.runs.size(), 3u);
  for (const QueuedRun& q : plan.runs) {
    const store::RunRow row = store_.reader().get_run(q.run_id);
    EXPECT_EQ(row.status, RunStatus::kQueued) << q.name;
    EXPECT_EQ(row.host, "gpu1") << q.name;
    EXPECT_EQ(q.uuid, row.uuid) << q.name;
  }
  EXPECT_EQ(plan.runs[1].uuid, "0123456789abcdef0123456789abcdef");
  EXPECT_NE(plan.runs[0].uuid, plan.runs[2].uuid);
  EXPECT_EQ(plan.runs[0].uuid.size(), 32u);
}

}  // namespace mmlab::queue
