// SPDX-License-Identifier: GPL-3.0-or-later
// End to end: the mmlab-studio binary as a process, on a temporary database, launching an
// experiment through its new-experiment dialog (--e2e-report drives the real window), waiting for
// the runs and reporting what its chart draws. With MMLAB_E2E_REAL=1 the real `mmlab` next to the
// studio (or $MMLAB_BIN) trains two tiny runs on the default corpus (scripts/get-corpus) and the
// drawn curves are compared with the rows the trainer stored; otherwise the fake trainer stands in
// and the drawn curves are compared with what it streamed. Run under Xvfb for a real X server
// (xvfb-run -a …); without DISPLAY it uses the offscreen QPA.
#include <gtest/gtest.h>

#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QTest>
#include <nlohmann/json.hpp>

#include "core/store/store.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "test_support.h"
#include "ui/run_manager.h"

using nlohmann::json;

TEST(StudioE2E, LaunchFromTheDialogAndTheChartDrawsWhatWasStored) {
  mmlab::test::qt_app();
  const QString studio = QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab-studio");
  if (!QFileInfo::exists(studio)) GTEST_SKIP() << "build the mmlab-studio target first";
  const QString real_mmlab = qEnvironmentVariableIsEmpty("MMLAB_BIN")
                                 ? QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")
                                 : qEnvironmentVariable("MMLAB_BIN");
  const bool real = !qEnvironmentVariableIsEmpty("MMLAB_E2E_REAL");
  if (real && !QFileInfo::exists(real_mmlab))
    GTEST_SKIP() << "MMLAB_E2E_REAL=1 needs the mmlab target";
  mmlab::test::TempDir dir;
  auto path = [&](const char* name) { return QString::fromStdString((dir / name).string()); };

  const json experiment = {
      {"name", "e2e-quick"},
      {"defaults",
       {{"model", {{"d_model", 32}, {"n_block", 1}}},
        {"train",
         {{"steps", 20},
          {"batch_size", 2},
          {"seq_len", 32},
          {"eval_every", 10},
          {"checkpoint_every", 10},
          {"device", "cpu"},
          {"threads", 1}}},
        {"data", {{"source", "default"}, {"tokenizer", "byte"}}}}},
      {"runs",
       {{{"name", "mamba"}, {"model", {{"family", "mamba"}}}},
        {{"name", "moe-mamba"}, {"model", {{"family", "moe-mamba"}, {"n_expert", 2}}}}}}};
  QFile f(path("e2e-quick.json"));
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(experiment.dump(2)));
  f.close();

  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("MMLAB_BIN", real ? real_mmlab : mmlab::test::write_fake_trainer(dir.path()));
  env.insert("FAKE_ID_FROM_NAME", "1");
  env.insert("XDG_CONFIG_HOME", path("config"));  // the studio's QSettings stay in the temp dir
  // The real trainer finds the default corpus in the user's data folder; keep that one.
  if (!real) env.insert("XDG_DATA_HOME", path("data"));
  if (!env.contains("DISPLAY")) env.insert("QT_QPA_PLATFORM", "offscreen");
  QProcess p;
  p.setProcessEnvironment(env);
  p.setProcessChannelMode(QProcess::ForwardedErrorChannel);
  const QString db = path("e2e.sqlite");
  const QString shot = path("studio-e2e.png");
  p.start(studio, {"--db", db, "--open", path("e2e-quick.json"), "--e2e-report",
                   path("report.json"), "--e2e-screenshot", shot});
  ASSERT_TRUE(p.waitForStarted(10000));
  ASSERT_TRUE(p.waitForFinished(590000)) << "the studio did not finish";
  QFile r(path("report.json"));
  ASSERT_TRUE(r.open(QIODevice::ReadOnly)) << "no report; exit code " << p.exitCode();
  const json report = json::parse(r.readAll().toStdString());
  EXPECT_EQ(p.exitCode(), 0) << report.dump(1);
  ASSERT_EQ(report["runs"].size(), 2u) << report.dump(1);
  EXPECT_GT(QFileInfo(shot).size(), 10000);
  if (!qEnvironmentVariableIsEmpty("MMLAB_SCREENSHOTS")) {
    const QString to = qEnvironmentVariable("MMLAB_SCREENSHOTS") + "/studio-e2e.png";
    QFile::remove(to);  // QFile::copy never overwrites
    QFile::copy(shot, to);
  }

  for (const json& run : report["runs"]) {
    EXPECT_EQ(run["state"], "finished") << run.dump();
    const int64_t id = run["run_id"];
    ASSERT_GE(id, 0);
    std::vector<std::pair<double, double>> drawn;
    for (const json& pt : run["drawn"])
      drawn.emplace_back(pt[0].get<double>(), pt[1].get<double>());
    if (real) {
      mmlab::store::ResultsStore s(db.toStdString());
      const auto stored = s.points(id, "loss");
      ASSERT_EQ(stored.size(), 20u);
      ASSERT_EQ(drawn.size(), stored.size());
      for (size_t i = 0; i < stored.size(); ++i) {
        EXPECT_EQ(drawn[i].first, double(stored[i].step));
        EXPECT_DOUBLE_EQ(drawn[i].second, stored[i].value);
      }
      EXPECT_EQ(s.get_run(id).status, mmlab::store::RunStatus::kFinished);
    } else {
      EXPECT_EQ(drawn, (std::vector<std::pair<double, double>>{{1, 9}, {2, 8}, {3, 7}}));
    }
  }
  EXPECT_EQ(report["plotted"].size(), 2u);
}

// The run manager against the real trainer (opt-in like the test above): SIGTERM stops a run
// with a checkpoint and exit code 0, and --resume continues it from that checkpoint.
TEST(StudioE2E, RealTrainerStopsOnSigtermAndResumesFromItsCheckpoint) {
  mmlab::test::qt_app();
  if (qEnvironmentVariableIsEmpty("MMLAB_E2E_REAL")) GTEST_SKIP() << "set MMLAB_E2E_REAL=1";
  const QString mmlab_bin = qEnvironmentVariableIsEmpty("MMLAB_BIN")
                                ? QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")
                                : qEnvironmentVariable("MMLAB_BIN");
  if (!QFileInfo::exists(mmlab_bin)) GTEST_SKIP() << "no mmlab binary";
  mmlab::test::TempDir dir;
  const QString db = QString::fromStdString((dir / "stop.sqlite").string());
  const QString exp = QString::fromStdString((dir / "long.json").string());
  const json experiment = {{"name", "e2e-stop"},
                           {"defaults",
                            {{"model", {{"d_model", 32}, {"n_block", 1}}},
                             {"train",
                              {{"steps", 5000},
                               {"batch_size", 2},
                               {"seq_len", 32},
                               {"eval_every", 1000},
                               {"checkpoint_every", 1000},
                               {"device", "cpu"},
                               {"threads", 1}}},
                             {"data", {{"source", "default"}, {"tokenizer", "byte"}}}}},
                           {"runs", {{{"name", "mamba"}, {"model", {{"family", "mamba"}}}}}}};
  QFile f(exp);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(experiment.dump()));
  f.close();

  mmlab::ui::RunManager m(mmlab_bin);
  m.set_stop_timeout(60000);
  const int k = m.enqueue_train(exp, "mamba", db, "cpu");
  ASSERT_TRUE(QTest::qWaitFor(
      [&] { return m.job(k)->step >= 5 || mmlab::ui::is_done(m.job(k)->state); }, 120000))
      << m.job(k)->message.toStdString();
  ASSERT_EQ(m.job(k)->state, mmlab::ui::RunState::kRunning) << m.job(k)->message.toStdString();
  ASSERT_TRUE(m.stop(k));
  ASSERT_TRUE(QTest::qWaitFor([&] { return mmlab::ui::is_done(m.job(k)->state); }, 60000));
  EXPECT_EQ(m.job(k)->state, mmlab::ui::RunState::kStopped);
  EXPECT_EQ(m.job(k)->exit_code, 0);
  EXPECT_EQ(m.job(k)->last_status, "stopped");
  const int64_t stopped_at = m.job(k)->step;
  const int64_t id = m.job(k)->run_id;
  {
    mmlab::store::ResultsStore s(db.toStdString());
    EXPECT_EQ(s.get_run(id).status, mmlab::store::RunStatus::kStopped);
    ASSERT_TRUE(s.latest_checkpoint(id).has_value());
    EXPECT_EQ(s.latest_checkpoint(id)->step, stopped_at);
  }
  ASSERT_TRUE(m.resume(k));
  EXPECT_EQ(m.job(k)->args.at(2), QString::number(id));
  ASSERT_TRUE(QTest::qWaitFor(
      [&] { return m.job(k)->step > stopped_at + 3 || mmlab::ui::is_done(m.job(k)->state); },
      120000));
  ASSERT_EQ(m.job(k)->state, mmlab::ui::RunState::kRunning)
      << "resume ended: " << m.job(k)->message.toStdString();
  EXPECT_EQ(m.job(k)->run_id, id);  // the same run continues
  ASSERT_TRUE(m.stop(k));
  ASSERT_TRUE(QTest::qWaitFor([&] { return mmlab::ui::is_done(m.job(k)->state); }, 60000));
  EXPECT_EQ(m.job(k)->state, mmlab::ui::RunState::kStopped);
}
