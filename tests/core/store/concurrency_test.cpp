// SPDX-License-Identifier: GPL-3.0-or-later
// Several processes on one results database: concurrent writers with a reader, and a writer
// killed with SIGKILL in the middle of its batches.
//
// Children are forked while the parent holds no connection: SQLite's per-process lock bookkeeping
// must not be shared across fork(). A child reports failure through its exit status only (gtest
// assertions belong to the parent) and leaves with _exit so no parent destructor runs twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <random>
#include <thread>

#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

using testing::make_run;
using testing::query_int;

constexpr int kMetrics = 10;
constexpr int kStepsPerBatch = 100;  // a batch is kMetrics * kStepsPerBatch points

std::vector<MetricPoint> batch(int64_t first_step) {
  std::vector<MetricPoint> out;
  out.reserve(kMetrics * kStepsPerBatch);
  for (int64_t s = first_step; s < first_step + kStepsPerBatch; ++s) {
    for (int m = 0; m < kMetrics; ++m) {
      out.push_back({"m" + std::to_string(m), s, s * 512, 0.01 * s, 1.0 / (1 + s + m)});
    }
  }
  return out;
}

// Forks `body` (which returns the child's exit status); returns the child's pid.
template <class F>
pid_t spawn(F body) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  int code = 1;
  try {
    code = body();
  } catch (const std::exception& e) {
    std::cerr << "child " << ::getpid() << ": " << e.what() << "\n";
  }
  ::_exit(code);
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(StoreConcurrency, TwoWritersAndAReaderOnOneFile) {
  test::TempDir dir;
  const auto path = dir / "shared.sqlite";
  { ResultsStore create(path); }  // closed before forking
  constexpr int kBatches = 60;

  std::vector<pid_t> writers;
  for (int w = 0; w < 2; ++w) {
    writers.push_back(spawn([&, w] {
      ResultsStore store(path);
      const int64_t run = make_run(store, "writer-" + std::to_string(w), "mamba", "concurrency");
      RunStart start;
      start.pid = ::getpid();
      start.host = current_host();
      store.writer(run).mark_started(start);
      for (int b = 0; b < kBatches; ++b) {
        store.writer(run).append_points(batch(1 + int64_t{b} * kStepsPerBatch));
        store.writer(run).heartbeat(int64_t{b + 1} * kStepsPerBatch, 0);
        if (b % 10 == 0)
          store.writer(run).add_event("log", R"({"batch": )" + std::to_string(b) + "}");
      }
      store.writer(run).set_status(RunStatus::kFinished);
      return 0;
    }));
  }

  // The reader (the studio) polls while both write; it must never fail or see a curve shrink.
  std::vector<int> codes(writers.size(), -1);
  auto running = [&] {
    bool any = false;
    for (size_t i = 0; i < writers.size(); ++i) {
      if (codes[i] != -1) continue;
      int status = 0;
      if (::waitpid(writers[i], &status, WNOHANG) == writers[i]) {
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else {
        any = true;
      }
    }
    return any;
  };
  int reads = 0;
  size_t last_seen = 0;
  {
    ResultsStore reader(path, OpenOptions{Database::Mode::kReadOnly});
    while (running()) {
      size_t total = 0;
      for (const RunRow& r : reader.reader().list_runs())
        total += reader.reader().points(r.id, "m3").size();
      EXPECT_GE(total, last_seen);
      last_seen = total;
      ++reads;
    }
  }
  EXPECT_EQ(codes, std::vector<int>(writers.size(), 0));
  EXPECT_GT(reads, 0);

  ResultsStore store(path);
  EXPECT_EQ(store.integrity_check(), "ok");
  std::vector<RunRow> runs = store.reader().list_runs();
  ASSERT_EQ(runs.size(), 2u);
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.status, RunStatus::kFinished) << r.name;
    EXPECT_EQ(r.step, kBatches * kStepsPerBatch);
    EXPECT_EQ(store.reader().events(r.id).size(), static_cast<size_t>(kBatches / 10));
    for (const SummaryRow& s : store.reader().summaries(r.id)) {
      EXPECT_EQ(s.count, kBatches * kStepsPerBatch) << s.metric;
      EXPECT_EQ(s.last_step, kBatches * kStepsPerBatch);
    }
    EXPECT_EQ(store.reader().metric_names(r.id).size(), static_cast<size_t>(kMetrics));
  }
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM metric_points"),
            2 * kBatches * kStepsPerBatch * kMetrics);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM metric_names"), kMetrics);
  EXPECT_EQ(query_int(path, testing::kOrphanPoints), 0);
}

TEST(StoreConcurrency, ProcessesCreatingOneFreshFileAtOnceMigrateItOnce) {
  test::TempDir dir;
  const auto path = dir / "new" / "fresh.sqlite";
  constexpr int kProcesses = 4;
  {
    // The parent creates a run first (elsewhere), so any uuid generator state it has is copied
    // into the children: they must still create distinct uuids.
    ResultsStore warm(dir / "warm.sqlite");
    make_run(warm, "parent");
  }
  std::vector<pid_t> children;
  for (int i = 0; i < kProcesses; ++i) {
    children.push_back(spawn([&, i] {
      ResultsStore store(path);
      make_run(store, "p" + std::to_string(i));
      return 0;
    }));
  }
  for (pid_t c : children) EXPECT_EQ(wait_exit_code(c), 0);
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), ResultsStore::schema_version());
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM runs"), kProcesses);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM experiments"), 1);
  ResultsStore store(path);
  EXPECT_EQ(store.integrity_check(), "ok");
}

TEST(StoreConcurrency, SigkillMidBatchLeavesAnIntactResumableDatabase) {
  test::TempDir dir;
  const auto path = dir / "killed.sqlite";
  int64_t run = 0;
  {
    ResultsStore store(path);
    run = make_run(store, "victim");
  }
  std::mt19937 rng(12345);
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    // The child resumes where the last one was killed and writes batches until killed.
    pid_t child = spawn([&] {
      ResultsStore store(path);
      RunStart start;
      start.pid = ::getpid();
      start.host = current_host();
      store.writer(run).mark_started(start);
      int64_t next = 1;
      for (const SummaryRow& s : store.reader().summaries(run))
        next = std::max(next, s.last_step + 1);
      for (int b = 0; b < 1000000; ++b) {  // far more than it gets to write before the kill
        store.writer(run).append_points(batch(next));
        next += kStepsPerBatch;
        store.writer(run).heartbeat(next - 1, 0);
      }
      return 0;
    });
    ASSERT_GT(child, 0);
    // Let it write a few batches, then kill it at a random moment.
    const int64_t floor = int64_t{round + 1} * 3 * kStepsPerBatch;
    for (int i = 0; i < 2000 && query_int(path,
                                          "SELECT coalesce(max(step), 0) FROM "
                                          "metric_points") < floor;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    EXPECT_EQ(wait_exit_code(child), 128 + SIGKILL);

    ResultsStore store(path);
    ASSERT_EQ(store.integrity_check(), "ok") << "round " << round;
    EXPECT_EQ(query_int(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    EXPECT_EQ(query_int(path, testing::kOrphanPoints), 0);
    // Batches are atomic: every metric has whole batches, and its summary agrees with its
    // points (both were written in the same transaction).
    const int64_t points = query_int(path, "SELECT count(*) FROM metric_points");
    EXPECT_GT(points, 0);
    EXPECT_EQ(points % (kMetrics * kStepsPerBatch), 0) << points;
    for (const SummaryRow& s : store.reader().summaries(run)) {
      EXPECT_EQ(s.count, points / kMetrics) << s.metric;
      EXPECT_EQ(s.last_step, points / kMetrics) << s.metric;
    }
    // Shown as lost once its heartbeat is stale: the process is gone.
    EXPECT_EQ(store.reader().lost_runs(0), std::vector<int64_t>{run});
  }
  // The run continues after the last kill.
  ResultsStore store(path);
  const int64_t done = query_int(path, "SELECT max(step) FROM metric_points");
  store.writer(run).append_points(batch(done + 1));
  store.writer(run).set_status(RunStatus::kFinished);
  EXPECT_EQ(store.reader().points(run, "m0").size(), static_cast<size_t>(done + kStepsPerBatch));
  EXPECT_EQ(store.integrity_check(), "ok");
}

}  // namespace
}  // namespace mmlab::store
