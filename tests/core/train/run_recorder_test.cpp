// SPDX-License-Identifier: GPL-3.0-or-later
// The run recorder: every end of a run writes the same bookkeeping — pending points, heartbeat,
// status and error in the store, one `status` line on the progress stream (read back with the
// studio's parser), the result's exit code — and a recorder that does not record writes nothing.
#include "core/train/run_recorder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "core/results/metric_names.h"
#include "core/store/store.h"
#include "core/store/store_test_util.h"
#include "test_support.h"

namespace mmlab {
namespace {

using store::ResultsStore;

// The progress stream's events, as the studio reads them.
std::vector<ProgressEvent> events_of(const std::string& stdout_text) {
  std::vector<ProgressEvent> events;
  std::istringstream lines(stdout_text);
  for (std::string line; std::getline(lines, line);) {
    ProgressEvent e;
    std::string why;
    EXPECT_EQ(parse_event(nlohmann::json::parse(line), e, why), EventParse::kEvent) << why;
    events.push_back(e);
  }
  return events;
}

class RunRecorderTest : public ::testing::Test {
 protected:
  RunRecorderTest()
      : store_(dir_ / "results.sqlite"),
        run_(store::testing::make_run(store_, "r")),
        writer_(store_.writer(run_)) {
    sink_->set_run(run_);
  }

  // The end `end` of a run at step 7 that has two points pending, recorded through the real JSONL
  // stream; returns what the stream said.
  template <class End>
  std::vector<ProgressEvent> end_with(End end) {
    RunRecorder recorder(*sink_);
    recorder.record_into(writer_);
    store::MetricBuffer points(writer_, 1000, std::chrono::hours(1));
    recorder.buffer_points(points);
    points.add(metric::kLoss, 6, 600, 1.5, 2.5);
    points.add(metric::kLoss, 7, 700, 1.75, 2.25);
    ::testing::internal::CaptureStdout();
    result_ = end(recorder, RunPosition{7, 700, 1.75, 10});
    return events_of(::testing::internal::GetCapturedStdout());
  }

  test::TempDir dir_;
  ResultsStore store_;
  int64_t run_ = 0;
  store::RunWriter writer_;
  std::unique_ptr<ProgressSink> sink_ = make_progress_sink("jsonl");
  TrainResult result_;
};

TEST_F(RunRecorderTest, FinishedFlushesThePointsBeatsAndSaysSoOnce) {
  const auto events =
      end_with([](RunRecorder& r, const RunPosition& at) { return r.finished(at, 2.3, 2.4); });
  EXPECT_EQ(result_.status, RunStatus::kFinished);
  EXPECT_EQ(result_.exit_code, 0);
  EXPECT_EQ(result_.run_id, run_);
  EXPECT_EQ(result_.final_loss_smooth, 2.3);
  EXPECT_EQ(result_.final_val_loss, 2.4);
  const store::RunRow row = store_.reader().get_run(run_);
  EXPECT_EQ(row.status, RunStatus::kFinished);
  EXPECT_EQ(row.step, 7);
  EXPECT_EQ(row.tokens, 700);
  EXPECT_TRUE(row.ended_at.has_value());
  EXPECT_EQ(store_.reader().points(run_, metric::kLoss).size(), 2u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, EventKind::kStatus);
  EXPECT_EQ(events[0].status, RunStatus::kFinished);
  EXPECT_EQ(events[0].run_id, run_);
  EXPECT_EQ(events[0].step, 7);
  EXPECT_EQ(events[0].total_steps, 10);
  EXPECT_EQ(events[0].wall, 1.75);
}

TEST_F(RunRecorderTest, StoppedIsStoredAndExitsZero) {
  const auto events = end_with([](RunRecorder& r, const RunPosition& at) { return r.stopped(at); });
  EXPECT_EQ(result_.status, RunStatus::kStopped);
  EXPECT_EQ(result_.exit_code, 0);
  EXPECT_EQ(store_.reader().get_run(run_).status, RunStatus::kStopped);
  EXPECT_EQ(store_.reader().get_run(run_).step, 7);
  EXPECT_EQ(store_.reader().points(run_, metric::kLoss).size(), 2u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].status, RunStatus::kStopped);
}

TEST_F(RunRecorderTest, DivergedNamesTheKeptCheckpointAndTheEventAddsTheFix) {
  store_.writer(run_).add_checkpoint(5, "/ck/step-5.pt", 100, "00ff");
  const auto events = end_with(
      [](RunRecorder& r, const RunPosition& at) { return r.diverged(at, "The loss became nan"); });
  const std::string message =
      "The loss became nan at step 7; the last good checkpoint (step 5, /ck/step-5.pt) is kept.";
  EXPECT_EQ(result_.status, RunStatus::kDiverged);
  EXPECT_EQ(result_.exit_code, kExitDiverged);
  EXPECT_EQ(result_.error, message);
  EXPECT_EQ(store_.reader().get_run(run_).status, RunStatus::kDiverged);
  EXPECT_EQ(store_.reader().get_run(run_).error_text, message);
  EXPECT_EQ(store_.reader().points(run_, metric::kLoss).size(), 2u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].status, RunStatus::kDiverged);
  EXPECT_EQ(events[0].message, message + " Lower train.lr or raise warmup_frac.");
}

TEST_F(RunRecorderTest, FailedKeepsTheSentenceTheCodeAndAStatusEventInTheTimeline) {
  const auto events = end_with([](RunRecorder& r, const RunPosition& at) {
    return r.failed(at, "The corpus vanished.", kExitBadInput);
  });
  EXPECT_EQ(result_.status, RunStatus::kFailed);
  EXPECT_EQ(result_.exit_code, kExitBadInput);
  EXPECT_EQ(result_.error, "The corpus vanished.");
  EXPECT_EQ(store_.reader().get_run(run_).status, RunStatus::kFailed);
  EXPECT_EQ(store_.reader().get_run(run_).error_text, "The corpus vanished.");
  EXPECT_EQ(store_.reader().points(run_, metric::kLoss).size(), 2u);
  const auto stored = store_.reader().events(run_);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].kind, "status");
  EXPECT_EQ(nlohmann::json::parse(stored[0].payload_json)["message"], "The corpus vanished.");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].status, RunStatus::kFailed);
  EXPECT_EQ(events[0].message, "The corpus vanished.");
}

TEST_F(RunRecorderTest, OutOfMemorySaysWhatWouldFitAndExits4) {
  MemoryAtFailure m;
  m.peak_bytes = 120'000'000'000;  // per row (120 + 10 - 1) GB / 64 = 2.02 GB
  m.requested_bytes = 10'000'000'000;
  m.total_bytes = 150'000'000'000;
  m.free_bytes = 140'000'000'000;  // room 0.9 * 140 - 4 * 1 = 122 GB: 60 rows; 32 divides 64
  m.weight_bytes = 1'000'000'000;
  TrainConfig train;
  train.batch_size = 64;
  train.seq_len = 1024;
  train.grad_accum = 1;
  const auto events = end_with([&](RunRecorder& r, const RunPosition& at) {
    return r.out_of_memory(at, "cuda:0 (NVIDIA H200)", m, train);
  });
  const std::string message =
      "Out of memory on cuda:0 (NVIDIA H200): batch_size 64 x seq_len 1024 needed more than "
      "130.0 GB and the card has 150.0 GB (140.0 GB free when the run started); train.batch_size "
      "32 with train.grad_accum 2 keeps the tokens per step and should fit.";
  EXPECT_EQ(result_.status, RunStatus::kFailed);
  EXPECT_EQ(result_.exit_code, kExitNoResource);
  EXPECT_EQ(result_.error, message);
  EXPECT_EQ(store_.reader().get_run(run_).error_text, message);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].message, message);
}

TEST_F(RunRecorderTest, AFailureTheStoreRefusesSaysTheRunWillShowAsLost) {
  RunRecorder recorder(*sink_);
  store::RunWriter gone = store_.writer(run_);
  store_.metadata().delete_run(run_);  // every write of the run is refused from now on
  recorder.record_into(gone);
  ::testing::internal::CaptureStdout();
  const TrainResult r = recorder.failed(RunPosition{3, 30, 0.5, 10}, "Boom.", kExitFailure);
  const auto events = events_of(::testing::internal::GetCapturedStdout());
  const std::string message = "Boom. The run could not be marked failed in " +
                              store_.path().string() +
                              " either, so it shows as lost once its heartbeat is stale.";
  EXPECT_EQ(r.error, message);
  EXPECT_EQ(r.exit_code, kExitFailure);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].message, message);
}

TEST_F(RunRecorderTest, ARecorderThatDoesNotRecordWritesNothing) {
  RunRecorder recorder(*sink_, std::chrono::seconds(0));
  EXPECT_FALSE(recorder.records());
  EXPECT_FALSE(recorder.heartbeat_due());
  ::testing::internal::CaptureStdout();
  recorder.started(RunPosition{}, "r", "cpu");
  const TrainResult done = recorder.finished(RunPosition{10, 100, 1, 10}, 2.0, 2.1);
  const TrainResult failed = recorder.failed(RunPosition{10, 100, 1, 10}, "Boom.", kExitBadInput);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
  EXPECT_EQ(done.status, RunStatus::kFinished);
  EXPECT_EQ(done.final_loss_smooth, 2.0);
  EXPECT_EQ(failed.error, "Boom.");
  EXPECT_EQ(failed.exit_code, kExitBadInput);
  const store::RunRow row = store_.reader().get_run(run_);
  EXPECT_EQ(row.status, RunStatus::kQueued);
  EXPECT_EQ(row.step, 0);
}

TEST_F(RunRecorderTest, AHeartbeatWritesThePendingPointsAndTheStep) {
  RunRecorder due(*sink_, std::chrono::seconds(0));
  due.record_into(writer_);
  EXPECT_TRUE(due.heartbeat_due());
  RunRecorder later(*sink_, std::chrono::hours(1));
  later.record_into(writer_);
  EXPECT_FALSE(later.heartbeat_due());

  store::MetricBuffer points(writer_, 1000, std::chrono::hours(1));
  due.buffer_points(points);
  points.add(metric::kLoss, 4, 400, 1.0, 3.0);
  due.heartbeat(RunPosition{4, 400, 1.0, 10});
  EXPECT_EQ(points.pending(), 0u);
  EXPECT_EQ(store_.reader().points(run_, metric::kLoss).size(), 1u);
  const store::RunRow row = store_.reader().get_run(run_);
  EXPECT_EQ(row.step, 4);
  EXPECT_EQ(row.tokens, 400);
  EXPECT_TRUE(row.heartbeat_at.has_value());
}

}  // namespace
}  // namespace mmlab
