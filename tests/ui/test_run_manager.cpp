// SPDX-License-Identifier: GPL-3.0-or-later
// The queue state machine against a real child process (fake_trainer.h).
#include <gtest/gtest.h>

#include <QFile>
#include <QSignalSpy>
#include <QTest>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/store/store.h"
#include "fake_trainer.h"
#include "process_support.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/run_manager.h"

using namespace mmlab::ui;
using mmlab::EventKind;
using mmlab::ProgressEvent;
using mmlab::RunStatus;

namespace {

class RunManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mmlab::test::qt_app();
    program_ = mmlab::test::write_fake_trainer(dir_.path());
    log_ = QString::fromStdString((dir_ / "log.txt").string());
    fake_log_.emplace("FAKE_LOG", log_);
  }
  void TearDown() override { fake_log_.reset(); }
  QStringList log_lines() const {
    QFile f(log_);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
  }
  static bool wait_done(const RunManager& m, int key, int ms = 10000) {
    return QTest::qWaitFor([&] { return is_done(m.job(key)->state); }, ms);
  }
  static QStringList args(const QString& name) {
    return {QStringLiteral("train"), QStringLiteral("exp.json"), QStringLiteral("--run"), name};
  }

  mmlab::test::TempDir dir_;
  QString program_;
  QString log_;
  std::optional<mmlab::test::ScopedEnv> fake_log_;
};

}  // namespace

TEST(RunStateRules, FinalStateFollowsExitCodeSignalAndStatusEvent) {
  EXPECT_EQ(final_state(0, false, false, RunStatus::kFinished), RunState::kFinished);
  EXPECT_EQ(final_state(0, false, false, std::nullopt), RunState::kFinished);
  EXPECT_EQ(final_state(0, false, false, RunStatus::kStopped),
            RunState::kStopped);  // SIGTERM from a shell
  EXPECT_EQ(final_state(0, false, true, RunStatus::kRunning), RunState::kStopped);
  EXPECT_EQ(final_state(1, false, false, RunStatus::kFailed), RunState::kFailed);
  EXPECT_EQ(final_state(3, false, false, std::nullopt), RunState::kFailed);
  EXPECT_EQ(final_state(4, false, false, std::nullopt), RunState::kFailed);
  EXPECT_EQ(final_state(5, false, false, RunStatus::kDiverged), RunState::kDiverged);
  EXPECT_EQ(final_state(0, true, false, RunStatus::kRunning),
            RunState::kFailed);  // killed by a signal
  EXPECT_EQ(final_state(0, true, true, RunStatus::kRunning), RunState::kStopped);  // our SIGKILL
  EXPECT_EQ(device_queue(""), "cpu");
  EXPECT_EQ(device_queue("CUDA"), "cuda:0");
  EXPECT_EQ(device_queue("cuda:1"), "cuda:1");
}

TEST_F(RunManagerTest, CpuQueueRunsOneAtATimeWhileCudaRunsAlongside) {
  RunManager m(program_);
  int steps_seen = 0;
  QObject::connect(&m, &RunManager::eventsReceived, [&](int, const std::vector<ProgressEvent>& ev) {
    for (const auto& e : ev) steps_seen += e.kind == EventKind::kStep;
  });
  const int a = m.enqueue("finish-a", "cpu", args("finish-a"));
  const int b = m.enqueue("finish-b", "cpu", args("finish-b"));
  const int c = m.enqueue("finish-c", "cuda", args("finish-c"));
  EXPECT_EQ(m.job(a)->state, RunState::kStarting);
  EXPECT_EQ(m.job(b)->state, RunState::kQueued);
  EXPECT_EQ(m.job(c)->state, RunState::kStarting);
  EXPECT_EQ(m.job(c)->device, "cuda:0");
  EXPECT_EQ(m.active_count(), 2);
  ASSERT_TRUE(QTest::qWaitFor([&] { return m.job(a)->state == RunState::kRunning; }, 5000));
  EXPECT_EQ(m.job(b)->state, RunState::kQueued);
  ASSERT_TRUE(wait_done(m, a));
  ASSERT_TRUE(wait_done(m, b));
  ASSERT_TRUE(wait_done(m, c));
  for (int k : {a, b, c}) {
    const RunJob* j = m.job(k);
    EXPECT_EQ(j->state, RunState::kFinished) << j->name.toStdString();
    EXPECT_EQ(j->exit_code, 0);
    EXPECT_EQ(j->run_id, 7);
    EXPECT_EQ(j->step, 3);
    EXPECT_EQ(j->total_steps, 3);
    EXPECT_EQ(j->tokens, 768);
    EXPECT_DOUBLE_EQ(j->progress(), 1.0);
  }
  EXPECT_EQ(steps_seen, 9);
  const QStringList log = log_lines();
  // b starts only after a ended; c (another device) started before a ended.
  EXPECT_LT(log.indexOf("end finish-a"), log.indexOf("start finish-b"));
  EXPECT_LT(log.indexOf("start finish-c"), log.indexOf("end finish-a"));
  EXPECT_EQ(log.size(), 6);
}

TEST_F(RunManagerTest, StopSendsSigtermAndTheTrainerEndsStopped) {
  RunManager m(program_);
  const int k = m.enqueue("slow-x", "cpu", args("slow-x"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return m.job(k)->step >= 3; }, 5000));
  EXPECT_EQ(m.job(k)->state, RunState::kRunning);
  EXPECT_EQ(m.job(k)->total_steps, 1000);
  EXPECT_GT(m.job(k)->eta_seconds(), 0);
  ASSERT_TRUE(m.stop(k));
  EXPECT_EQ(m.job(k)->state, RunState::kStopping);
  ASSERT_TRUE(wait_done(m, k));
  EXPECT_EQ(m.job(k)->state, RunState::kStopped);
  EXPECT_EQ(m.job(k)->exit_code, 0);
  EXPECT_EQ(m.job(k)->last_status, RunStatus::kStopped);
  EXPECT_LT(m.job(k)->step, 400);  // it stopped early, not at the end of its loop
  EXPECT_FALSE(m.stop(k));         // nothing left to stop
}

TEST_F(RunManagerTest, AChildIgnoringSigtermIsKilledAfterTheTimeout) {
  RunManager m(program_);
  m.set_stop_timeout(300);
  const int k = m.enqueue("hang-y", "cpu", args("hang-y"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return m.job(k)->state == RunState::kRunning; }, 5000));
  QElapsedTimer t;
  t.start();
  ASSERT_TRUE(m.stop(k));
  ASSERT_TRUE(wait_done(m, k));
  EXPECT_GE(t.elapsed(), 250);
  EXPECT_EQ(m.job(k)->state, RunState::kStopped);
  EXPECT_EQ(m.job(k)->exit_code, -1);
  EXPECT_TRUE(m.job(k)->message.startsWith("Killed")) << m.job(k)->message.toStdString();
}

TEST_F(RunManagerTest, FailuresCarryTheTrainersOwnSentence) {
  RunManager m(program_);
  const int f = m.enqueue("fail-z", "cpu", args("fail-z"));
  const int u = m.enqueue("usage-u", "cuda:1", args("usage-u"));
  const int d = m.enqueue("diverge-d", "cuda:2", args("diverge-d"));
  ASSERT_TRUE(wait_done(m, f));
  ASSERT_TRUE(wait_done(m, u));
  ASSERT_TRUE(wait_done(m, d));
  EXPECT_EQ(m.job(f)->state, RunState::kFailed);
  EXPECT_EQ(m.job(f)->exit_code, 3);
  EXPECT_EQ(m.job(f)->message, "$.runs[0].model.d_model: must be > 0, got -3");
  EXPECT_EQ(m.job(u)->state, RunState::kFailed);
  EXPECT_EQ(m.job(u)->exit_code, 2);
  EXPECT_EQ(m.job(u)->message,
            "mmlab train: unknown option --bogus Run 'mmlab train --help' for usage.");
  EXPECT_EQ(m.job(d)->state, RunState::kDiverged);
  EXPECT_EQ(m.job(d)->message, "loss is NaN at step 1");
}

TEST_F(RunManagerTest, AMissingBinaryFailsAtStartAndTheQueueMovesOn) {
  RunManager m(QString::fromStdString((dir_ / "no-such-mmlab").string()));
  const int a = m.enqueue("finish-a", "cpu", args("finish-a"));
  const int b = m.enqueue("finish-b", "cpu", args("finish-b"));
  ASSERT_TRUE(wait_done(m, a));
  ASSERT_TRUE(wait_done(m, b));
  EXPECT_EQ(m.job(a)->state, RunState::kFailed);
  EXPECT_TRUE(m.job(a)->message.startsWith("Could not start")) << m.job(a)->message.toStdString();
  EXPECT_TRUE(m.job(a)->message.contains("MMLAB_BIN"));
  EXPECT_EQ(m.job(b)->state, RunState::kFailed);
  // Fixing the binary and retrying runs the same job again.
  m.set_program(program_);
  ASSERT_TRUE(m.retry(a));
  ASSERT_TRUE(wait_done(m, a));
  EXPECT_EQ(m.job(a)->state, RunState::kFinished);
  EXPECT_EQ(m.job(a)->attempts, 2);
}

TEST_F(RunManagerTest, ReorderRemoveStopQueuedAndResume) {
  RunManager m(program_);
  m.set_paused(true);
  const int a = m.enqueue("finish-a", "cpu", args("finish-a"));
  const int b = m.enqueue("finish-b", "cpu", args("finish-b"));
  const int c = m.enqueue("finish-c", "cpu", args("finish-c"));
  EXPECT_TRUE(m.move(c, -2));
  ASSERT_EQ(m.jobs().size(), 3u);
  EXPECT_EQ(m.jobs()[0].key, c);
  EXPECT_EQ(m.jobs()[1].key, a);
  EXPECT_EQ(m.jobs()[2].key, b);
  EXPECT_FALSE(m.move(c, -1));  // already first
  EXPECT_TRUE(m.move(c, 5));    // clamped to last
  EXPECT_EQ(m.jobs()[2].key, c);
  EXPECT_TRUE(m.remove(b));
  EXPECT_EQ(m.job(b), nullptr);
  EXPECT_TRUE(m.stop(c));  // a queued job just ends
  EXPECT_EQ(m.job(c)->state, RunState::kStopped);
  EXPECT_FALSE(m.resume(c));  // never ran: no run id to resume
  m.set_paused(false);
  EXPECT_EQ(m.job(a)->state, RunState::kStarting);
  EXPECT_FALSE(m.remove(a));  // active
  ASSERT_TRUE(wait_done(m, a));
  EXPECT_FALSE(m.resume(a));  // finished runs are not resumed

  const int s = m.enqueue("slow-s", "cpu", args("slow-s"), "/tmp/x.sqlite");
  ASSERT_TRUE(QTest::qWaitFor([&] { return m.job(s)->step >= 1; }, 5000));
  m.stop(s);
  ASSERT_TRUE(wait_done(m, s));
  ASSERT_TRUE(m.resume(s));
  EXPECT_EQ(m.job(s)->args,
            (QStringList{"train", "--resume", "7", "--db", "/tmp/x.sqlite", "--progress=jsonl"}));
  ASSERT_TRUE(wait_done(m, s));
  EXPECT_EQ(m.job(s)->state, RunState::kFinished);
  EXPECT_TRUE(log_lines().contains("start resume-7"));
}

TEST_F(RunManagerTest, MalformedLinesAreCountedAndTheRunStillFinishes) {
  RunManager m(program_);
  const int g = m.enqueue("garbage-g", "cpu", args("garbage-g"));
  ASSERT_TRUE(wait_done(m, g));
  EXPECT_EQ(m.job(g)->state, RunState::kFinished);
  EXPECT_EQ(m.job(g)->malformed_lines, 3);
  EXPECT_EQ(m.job(g)->step, 1);
}

// The queue's message column showed "Preparing data" for the whole run: the start-up note ends
// when training starts.
TEST_F(RunManagerTest, TheStartUpNoteEndsWhenTrainingRuns) {
  RunManager m(program_);
  const int k = m.enqueue("prep-p", "cpu", args("prep-p"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return m.job(k)->step >= 1; }, 10000));
  EXPECT_EQ(m.job(k)->state, RunState::kRunning);
  EXPECT_EQ(m.job(k)->note, "");
  ASSERT_TRUE(wait_done(m, k));
  EXPECT_EQ(m.job(k)->state, RunState::kFinished);
}

TEST(RunManagerRanks, ARunOnSeveralProcessesStartsThroughMmlabLaunch) {
  RunJob job;
  job.args = {QStringLiteral("train"), QStringLiteral("exp.json"), QStringLiteral("--run"),
              QStringLiteral("mamba")};
  EXPECT_EQ(RunManager::child_arguments(job), job.args);  // one process: as it is
  job.ranks = 2;
  EXPECT_EQ(RunManager::child_arguments(job),
            (QStringList{QStringLiteral("launch"), QStringLiteral("--nproc"), QStringLiteral("2"),
                         QStringLiteral("--"), QStringLiteral("train"), QStringLiteral("exp.json"),
                         QStringLiteral("--run"), QStringLiteral("mamba")}));
}

// The real mmlab: a run queued with 2 processes trains on 2 Gloo ranks, and rank 0's stream is
// the job's.
TEST(RunManagerRanks, TheRealTrainerRunsOnTwoRanks) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  mmlab::test::write_synthetic_corpus(dir / "corpus", 6, 80);
  mmlab::test::ScopedEnv xdg("XDG_DATA_HOME", QString::fromStdString((dir / "xdg").string()));
  const nlohmann::json ex = {
      {"name", "two-ranks"},
      {"runs",
       {{{"name", "mamba"},
         {"model", {{"family", "mamba"}, {"d_model", 16}, {"n_block", 1}, {"d_state", 4}}},
         {"train",
          {{"steps", 4},
           {"batch_size", 4},
           {"seq_len", 16},
           {"eval_every", 0},
           {"eval_batches", 2},
           {"threads", 1}}},
         {"data",
          {{"source", (dir / "corpus").string()},
           {"tokenizer", "byte"},
           {"val_fraction", 0.2}}}}}}};
  const std::string exp = (dir / "exp.json").string();
  std::ofstream(exp) << ex.dump();
  const QString db = QString::fromStdString((dir / "runs.sqlite").string());
  RunManager m(QString::fromStdString(mmlab::test::mmlab_binary()));
  const int key = m.enqueue_train(QString::fromStdString(exp), QStringLiteral("mamba"), db,
                                  QStringLiteral("cpu"), -1, 2);
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(m.job(key)->state); }, 120000));
  const RunJob* job = m.job(key);
  EXPECT_EQ(job->state, RunState::kFinished) << job->stderr_tail.toStdString();
  EXPECT_EQ(job->step, 4);
  mmlab::store::ResultsStore st(db.toStdString());
  const auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(st.reader().get_run(runs[0].id).device.find("x 2 ranks") != std::string::npos, true)
      << st.reader().get_run(runs[0].id).device;
}
