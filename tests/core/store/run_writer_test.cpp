// SPDX-License-Identifier: GPL-3.0-or-later
// The run writer is bound to one run: whatever it is asked to write lands in that run's rows, a
// neighbouring run's rows stay as they were, and a writer for a run the database does not hold
// is refused before anything is written.
#include "core/store/run_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

using ::testing::HasSubstr;
using testing::make_run;
using testing::series;

// Only the store hands out writers, each for a run it holds.
static_assert(!std::is_default_constructible_v<RunWriter>);
static_assert(!std::is_constructible_v<RunWriter, int64_t>);
static_assert(!std::is_constructible_v<RunWriter, ResultsStore&, int64_t>);

// Everything of one run a writer could touch, for comparing before and after.
struct RunRows {
  RunRow row;
  std::vector<PointRow> loss;
  std::vector<SummaryRow> summaries;
  std::vector<EventRow> events;
  std::vector<CheckpointRow> checkpoints;
};

RunRows rows_of(RunReader& reader, int64_t run) {
  return {reader.get_run(run), reader.points(run, "loss"), reader.summaries(run),
          reader.events(run), reader.list_checkpoints(run)};
}

void expect_same(const RunRows& a, const RunRows& b) {
  EXPECT_EQ(a.row.status, b.row.status);
  EXPECT_EQ(a.row.step, b.row.step);
  EXPECT_EQ(a.row.tokens, b.row.tokens);
  EXPECT_EQ(a.row.pid, b.row.pid);
  EXPECT_EQ(a.row.host, b.row.host);
  EXPECT_EQ(a.row.device, b.row.device);
  EXPECT_EQ(a.row.config_json, b.row.config_json);
  EXPECT_EQ(a.row.total_steps, b.row.total_steps);
  EXPECT_EQ(a.row.error_text, b.row.error_text);
  EXPECT_EQ(a.row.ops_used, b.row.ops_used);
  EXPECT_EQ(a.row.heartbeat_at, b.row.heartbeat_at);
  EXPECT_EQ(a.row.ended_at, b.row.ended_at);
  ASSERT_EQ(a.loss.size(), b.loss.size());
  for (size_t i = 0; i < a.loss.size(); ++i) {
    EXPECT_EQ(a.loss[i].step, b.loss[i].step);
    EXPECT_EQ(a.loss[i].value, b.loss[i].value);
  }
  ASSERT_EQ(a.summaries.size(), b.summaries.size());
  for (size_t i = 0; i < a.summaries.size(); ++i) {
    EXPECT_EQ(a.summaries[i].last, b.summaries[i].last);
    EXPECT_EQ(a.summaries[i].min, b.summaries[i].min);
    EXPECT_EQ(a.summaries[i].count, b.summaries[i].count);
  }
  ASSERT_EQ(a.events.size(), b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) EXPECT_EQ(a.events[i].id, b.events[i].id);
  ASSERT_EQ(a.checkpoints.size(), b.checkpoints.size());
  for (size_t i = 0; i < a.checkpoints.size(); ++i) {
    EXPECT_EQ(a.checkpoints[i].id, b.checkpoints[i].id);
  }
}

class RunWriterTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::filesystem::path path_ = dir_ / "results.sqlite";
  ResultsStore store_{path_};
};

TEST_F(RunWriterTest, WritesItsOwnRunAndLeavesTheOtherRunAsItWas) {
  const int64_t a = make_run(store_, "a");
  const int64_t b = make_run(store_, "b");
  RunWriter for_b = store_.writer(b);
  RunStart start;
  start.pid = 4242;
  start.host = "gpu-host";
  start.device = "cpu";
  for_b.mark_started(start);
  for_b.append_points(series("loss", 1, 20, [](int64_t s) { return 5.0 / s; }));
  for_b.heartbeat(20, 20 * 1024);
  for_b.add_event("log", "{}", 20);
  const int64_t b_checkpoint = for_b.add_checkpoint(20, "/ck/b/step-20.pt", 10, "bb");
  const RunRows b_before = rows_of(store_.reader(), b);

  RunWriter for_a = store_.writer(a);
  EXPECT_EQ(for_a.run_id(), a);
  EXPECT_TRUE(for_a.claim_queued(1234, "here"));
  for_a.record_start_config(R"({"d_model": 128})", 50, "abc123");
  for_a.mark_started(RunStart{});
  for_a.append_points(series("loss", 1, 30, [](int64_t s) { return 9.0 / s; }));
  for_a.truncate_after(25);
  for_a.heartbeat(25, 25 * 1024);
  for_a.set_ops_used(R"({"selective_scan": "reference"})");
  for_a.add_event("eval", R"({"metrics": {}})", 25);
  const int64_t a_checkpoint = for_a.add_checkpoint(25, "/ck/a/step-25.pt", 10, "aa");
  // An id of another run's checkpoint is not this writer's to forget.
  for_a.delete_checkpoint_row(b_checkpoint);
  for_a.set_status(RunStatus::kFailed, "Boom.");

  expect_same(rows_of(store_.reader(), b), b_before);
  EXPECT_EQ(store_.reader().list_checkpoints(b).front().id, b_checkpoint);

  const RunRow row = for_a.row();
  EXPECT_EQ(row.status, RunStatus::kFailed);
  EXPECT_EQ(row.error_text, "Boom.");
  EXPECT_EQ(row.step, 25);
  EXPECT_EQ(row.total_steps, 50);
  EXPECT_EQ(row.config_json, R"({"d_model": 128})");
  EXPECT_EQ(row.ops_used, R"({"selective_scan": "reference"})");
  EXPECT_EQ(store_.reader().points(a, "loss").size(), 25u);
  ASSERT_EQ(for_a.events().size(), 1u);
  EXPECT_EQ(for_a.events().front().kind, "eval");
  ASSERT_EQ(for_a.checkpoints().size(), 1u);
  EXPECT_EQ(for_a.latest_checkpoint()->id, a_checkpoint);
  for_a.delete_checkpoint_row(a_checkpoint);
  EXPECT_TRUE(for_a.checkpoints().empty());
  EXPECT_EQ(store_.integrity_check(), "ok");
}

TEST_F(RunWriterTest, AWriterForARunTheDatabaseDoesNotHoldIsRefused) {
  make_run(store_, "a");
  try {
    store_.writer(999);
    FAIL() << "a writer for run 999 was made";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("No run 999 in the results database " + path_.string()));
  }
  EXPECT_EQ(store_.reader().list_runs().size(), 1u);
}

TEST_F(RunWriterTest, AWriterWhoseRunWasDeletedRefusesEveryWrite) {
  const int64_t a = make_run(store_, "a");
  const int64_t b = make_run(store_, "b");
  RunWriter for_a = store_.writer(a);
  store_.metadata().delete_run(a);
  EXPECT_THROW(for_a.heartbeat(1, 1), UserError);
  EXPECT_THROW(for_a.set_status(RunStatus::kFinished), UserError);
  EXPECT_THROW(for_a.append_points({{"loss", 1, 1, 1, 1.0}}), UserError);
  EXPECT_THROW(for_a.add_event("log", "{}"), UserError);
  EXPECT_THROW(for_a.add_checkpoint(1, "/c", 1, "h"), UserError);
  EXPECT_EQ(store_.reader().get_run(b).status, RunStatus::kQueued);
  EXPECT_TRUE(store_.reader().points(b, "loss").empty());
}

TEST_F(RunWriterTest, AWriterKeepsTheConnectionOpenAfterItsStoreIsGone) {
  const int64_t a = make_run(store_, "a");
  RunWriter writer = ResultsStore(path_).writer(a);
  writer.append_points({{"loss", 1, 1024, 0.5, 3.0}});
  writer.set_status(RunStatus::kFinished);
  EXPECT_EQ(writer.path(), path_);
  EXPECT_EQ(store_.reader().get_run(a).status, RunStatus::kFinished);
  EXPECT_EQ(store_.reader().points(a, "loss").size(), 1u);
}

TEST_F(RunWriterTest, AMetricBufferWritesThroughItsWriter) {
  const int64_t a = make_run(store_, "a");
  const int64_t b = make_run(store_, "b");
  RunWriter for_a = store_.writer(a);
  {
    MetricBuffer points(for_a, 1000, std::chrono::hours(1));
    points.add("loss", 1, 1024, 0.5, 3.0);
    points.add("loss", 2, 2048, 1.0, 2.5);
  }
  EXPECT_EQ(store_.reader().points(a, "loss").size(), 2u);
  EXPECT_TRUE(store_.reader().points(b, "loss").empty());
}

}  // namespace
}  // namespace mmlab::store
