// SPDX-License-Identifier: GPL-3.0-or-later
// End to end: the mmlab-studio binary as a process, on a temporary database, launching an
// experiment through its new-experiment dialog (--e2e-report drives the real window), waiting for
// the runs and reporting what its chart draws.
//
// With the real trainer — `mmlab` of this build tree (MMLAB_BINARY_DIR/app/mmlab), or $MMLAB_BIN —
// the studio launches the quick comparison (ExperimentDialog::default_document: the paper's four
// families) cut to 20 steps on a small synthetic corpus written into a temporary folder, with
// XDG_DATA_HOME there too, so nothing of the user's data folder (corpora, tokenizer cache,
// checkpoints) is read or written; the drawn curves are compared with the rows the trainer stored.
// Without the binary those tests are skipped (build the `mmlab` target). The fake-trainer variant
// always runs: the drawn curves are compared with what the fake streamed.
//
// Run under Xvfb for a real X server (xvfb-run -a …); without DISPLAY the studio uses the
// offscreen QPA.
#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QSettings>
#include <QTest>
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/store/store.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "scoped_settings.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/main_window.h"
#include "ui/run_manager.h"

using nlohmann::json;

namespace {

constexpr int kRealSteps = 20;

/// Where the real trainer is looked for: $MMLAB_BIN, else `mmlab` of this build tree.
QString trainer_path() {
  return qEnvironmentVariableIsEmpty("MMLAB_BIN") ? QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")
                                                  : qEnvironmentVariable("MMLAB_BIN");
}

/// The real trainer, or an empty string when there is none.
QString real_trainer() {
  return QFileInfo(trainer_path()).isExecutable() ? trainer_path() : QString();
}

std::string skip_message() {
  return ("no mmlab binary at " + trainer_path() +
          ": build the mmlab target in this build tree (or set MMLAB_BIN) to run the studio "
          "against the real trainer")
      .toStdString();
}

QString qpath(const std::filesystem::path& p) {
  return QString::fromStdString(p.string());
}

/// A small corpus for the byte tokenizer: 24 plain-text files of 400 words each (~100 KB),
/// generated from a fixed seed. Returns its folder.
QString write_synthetic_corpus(const mmlab::test::TempDir& dir) {
  const std::filesystem::path folder = dir / "corpus";
  std::filesystem::create_directories(folder);
  static const char* const kWords[] = {
      "the",    "a",     "state", "space", "model", "mixture",   "of",  "experts", "token",
      "router", "layer", "block", "gate",  "scan",  "selective", "and", "sparse",  "dense"};
  std::mt19937 gen(20240301);
  for (int d = 0; d < 24; ++d) {
    std::string text;
    for (int w = 0; w < 400; ++w) {
      text += kWords[gen() % (sizeof kWords / sizeof *kWords)];
      text += (w % 16 == 15) ? ".\n" : " ";
    }
    QFile f(qpath(folder / ("doc-" + std::to_string(100 + d) + ".txt")));
    EXPECT_TRUE(f.open(QIODevice::WriteOnly));
    f.write(text.data(), qint64(text.size()));
  }
  return qpath(folder);
}

struct StudioResult {
  json report;
  int exit_code = -1;
  QString db, screenshot;
  qint64 elapsed_ms = 0;
};

/// Writes `experiment`, runs `mmlab-studio --db … --open … --e2e-report …` with `trainer` as
/// MMLAB_BIN and the XDG folders in `dir`, and reads its report. `publish`: copy the screenshot
/// to $MMLAB_SCREENSHOTS/studio-e2e.png when that is set.
void run_studio(const mmlab::test::TempDir& dir, const json& experiment, const QString& trainer,
                bool publish, StudioResult* out) {
  const QString studio = QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab-studio");
  ASSERT_TRUE(QFileInfo::exists(studio)) << "build the mmlab-studio target first";
  auto path = [&](const char* name) { return qpath(dir / name); };
  QFile f(path("experiment.json"));
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(experiment.dump(2)));
  f.close();

  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("MMLAB_BIN", trainer);
  env.insert("FAKE_ID_FROM_NAME", "1");
  env.insert("XDG_CONFIG_HOME", path("config"));  // the studio's QSettings stay in the temp dir
  env.insert("XDG_DATA_HOME", path("data"));      // and the trainer's cache and checkpoints
  if (!env.contains("DISPLAY")) env.insert("QT_QPA_PLATFORM", "offscreen");
  QProcess p;
  p.setProcessEnvironment(env);
  p.setProcessChannelMode(QProcess::ForwardedErrorChannel);
  out->db = path("e2e.sqlite");
  out->screenshot = path("studio-e2e.png");
  QElapsedTimer clock;
  clock.start();
  p.start(studio, {"--db", out->db, "--open", path("experiment.json"), "--e2e-report",
                   path("report.json"), "--e2e-screenshot", out->screenshot});
  ASSERT_TRUE(p.waitForStarted(10000));
  ASSERT_TRUE(p.waitForFinished(300000)) << "the studio did not finish within 5 minutes";
  out->elapsed_ms = clock.elapsed();
  out->exit_code = p.exitCode();
  QFile r(path("report.json"));
  ASSERT_TRUE(r.open(QIODevice::ReadOnly)) << "no report; exit code " << p.exitCode();
  out->report = json::parse(r.readAll().toStdString());
  EXPECT_GT(QFileInfo(out->screenshot).size(), 10000);
  if (publish && !qEnvironmentVariableIsEmpty("MMLAB_SCREENSHOTS")) {
    const QString to = qEnvironmentVariable("MMLAB_SCREENSHOTS") + "/studio-e2e.png";
    QFile::remove(to);  // QFile::copy never overwrites
    QFile::copy(out->screenshot, to);
  }
}

std::vector<std::pair<double, double>> drawn_of(const json& run) {
  std::vector<std::pair<double, double>> drawn;
  for (const json& pt : run["drawn"]) drawn.emplace_back(pt[0].get<double>(), pt[1].get<double>());
  return drawn;
}

}  // namespace

TEST(StudioE2E, LaunchFromTheDialogAndTheChartDrawsWhatTheFakeTrainerStreamed) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  // A launch checks that the data source exists (the fake trainer reads nothing).
  const json experiment = {
      {"name", "e2e-quick"},
      {"defaults",
       {{"model", {{"d_model", 32}, {"n_block", 1}}},
        {"train", {{"steps", 20}, {"batch_size", 2}, {"seq_len", 32}, {"device", "cpu"}}},
        {"data", {{"source", write_synthetic_corpus(dir).toStdString()}, {"tokenizer", "byte"}}}}},
      {"runs",
       {{{"name", "mamba"}, {"model", {{"family", "mamba"}}}},
        {{"name", "moe-mamba"}, {"model", {{"family", "moe-mamba"}, {"n_expert", 2}}}}}}};
  StudioResult res;
  ASSERT_NO_FATAL_FAILURE(
      run_studio(dir, experiment, mmlab::test::write_fake_trainer(dir.path()), false, &res));
  EXPECT_EQ(res.exit_code, 0) << res.report.dump(1);
  ASSERT_EQ(res.report["runs"].size(), 2u) << res.report.dump(1);
  for (const json& run : res.report["runs"]) {
    EXPECT_EQ(run["state"], "finished") << run.dump();
    EXPECT_GE(run["run_id"].get<int64_t>(), 0);
    EXPECT_EQ(drawn_of(run), (std::vector<std::pair<double, double>>{{1, 9}, {2, 8}, {3, 7}}));
  }
  EXPECT_EQ(res.report["plotted"].size(), 2u);
}

// The end-to-end test: the quick comparison launched through the studio's dialog and
// trained by the real `mmlab`; every drawn point must be the stored `loss` row of its run.
TEST(StudioE2E, RealTrainerQuickComparisonFromTheDialogDrawsWhatWasStored) {
  mmlab::test::qt_app();
  const QString trainer = real_trainer();
  if (trainer.isEmpty()) GTEST_SKIP() << skip_message();
  mmlab::test::TempDir dir;
  json experiment = mmlab::ui::ExperimentDialog::default_document();
  experiment["defaults"]["train"]["steps"] = kRealSteps;
  experiment["defaults"]["train"]["eval_every"] = 10;
  experiment["defaults"]["data"] = {{"source", write_synthetic_corpus(dir).toStdString()},
                                    {"tokenizer", "byte"}};
  const size_t n_runs = experiment["runs"].size();
  ASSERT_EQ(n_runs, 4u);  // the paper's four families

  StudioResult res;
  ASSERT_NO_FATAL_FAILURE(run_studio(dir, experiment, trainer, true, &res));
  std::cout << "[ studio  ] " << n_runs << " runs of " << kRealSteps << " steps in "
            << res.elapsed_ms << " ms (studio start to exit)\n";
  EXPECT_EQ(res.exit_code, 0) << res.report.dump(1);
  ASSERT_EQ(res.report["runs"].size(), n_runs) << res.report.dump(1);

  mmlab::store::ResultsStore s(res.db.toStdString());
  std::vector<int64_t> ids;
  for (size_t i = 0; i < n_runs; ++i) {
    const json& run = res.report["runs"][i];
    EXPECT_EQ(run["state"], "finished") << run.dump();
    EXPECT_EQ(run["name"], experiment["runs"][i]["name"]) << "launched in the document's order";
    const int64_t id = run["run_id"];
    ASSERT_GE(id, 0);
    ids.push_back(id);
    const mmlab::store::RunRow row = s.reader().get_run(id);
    EXPECT_EQ(row.status, mmlab::store::RunStatus::kFinished);
    EXPECT_EQ(row.name, run["name"].get<std::string>());
    EXPECT_EQ(row.experiment, "quick-compare");
    EXPECT_EQ(row.step, kRealSteps);
    const auto stored = s.reader().points(id, "loss");
    ASSERT_EQ(stored.size(), size_t(kRealSteps)) << row.name;
    const auto drawn = drawn_of(run);
    ASSERT_EQ(drawn.size(), stored.size()) << row.name;
    for (size_t i = 0; i < stored.size(); ++i) {
      EXPECT_EQ(drawn[i].first, double(stored[i].step)) << row.name;
      EXPECT_DOUBLE_EQ(drawn[i].second, stored[i].value) << row.name;
    }
    // Validation ran (eval_every 10) and the checkpoint went to the temporary data folder.
    EXPECT_EQ(s.reader().points(id, "val_loss").size(), 2u) << row.name;
    const auto ckpt = s.reader().latest_checkpoint(id);
    ASSERT_TRUE(ckpt.has_value()) << row.name;
    EXPECT_EQ(ckpt->step, kRealSteps);
    EXPECT_TRUE(QFileInfo(QString::fromStdString(ckpt->path))
                    .absoluteFilePath()
                    .startsWith(qpath(dir / "data") + "/"))
        << ckpt->path;
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(res.report["plotted"].get<std::vector<int64_t>>(), ids);
}

// The run manager against the real trainer: SIGTERM stops a run with a checkpoint and exit code
// 0, and --resume continues the same run from that checkpoint (with its data position), so the
// stored curve has every step exactly once.
TEST(StudioE2E, RealTrainerStopsOnSigtermAndResumesFromItsCheckpoint) {
  mmlab::test::qt_app();
  const QString mmlab_bin = real_trainer();
  if (mmlab_bin.isEmpty()) GTEST_SKIP() << skip_message();
  mmlab::test::TempDir dir;
  // The children inherit this process's environment: keep their data folder in the temp dir.
  mmlab::test::ScopedEnv data_home("XDG_DATA_HOME", qpath(dir / "data"));
  const QString db = qpath(dir / "stop.sqlite");
  const QString exp = qpath(dir / "long.json");
  const json experiment = {
      {"name", "e2e-stop"},
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
        {"data", {{"source", write_synthetic_corpus(dir).toStdString()}, {"tokenizer", "byte"}}}}},
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
  EXPECT_EQ(m.job(k)->last_status, mmlab::RunStatus::kStopped);
  const int64_t stopped_at = m.job(k)->step;
  const int64_t id = m.job(k)->run_id;
  {
    mmlab::store::ResultsStore s(db.toStdString());
    EXPECT_EQ(s.reader().get_run(id).status, mmlab::store::RunStatus::kStopped);
    ASSERT_TRUE(s.reader().latest_checkpoint(id).has_value());
    EXPECT_EQ(s.reader().latest_checkpoint(id)->step, stopped_at);
    EXPECT_TRUE(QFileInfo(QString::fromStdString(s.reader().latest_checkpoint(id)->path))
                    .absoluteFilePath()
                    .startsWith(qpath(dir / "data") + "/"));
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
  EXPECT_EQ(m.job(k)->exit_code, 0);
  const int64_t last = m.job(k)->step;
  EXPECT_GT(last, stopped_at + 3);

  mmlab::store::ResultsStore s(db.toStdString());
  EXPECT_EQ(s.reader().get_run(id).status, mmlab::store::RunStatus::kStopped);
  EXPECT_EQ(s.reader().get_run(id).step, last);
  ASSERT_TRUE(s.reader().latest_checkpoint(id).has_value());
  EXPECT_EQ(s.reader().latest_checkpoint(id)->step, last);
  std::vector<int64_t> steps, want;
  for (const auto& p : s.reader().points(id, "loss")) steps.push_back(p.step);
  for (int64_t i = 1; i <= last; ++i) want.push_back(i);
  EXPECT_EQ(steps, want) << "the stored curve should have steps 1.." << last << " once each";
}

// Settings ▸ Runs at once per device with the real trainer: three tiny CPU runs with two at once
// start two trainers at the launch, the third when one of them ends, and all three finish with
// every step stored.
TEST(StudioE2E, TheQueueTrainsUpToNRunsPerDeviceAtOnce) {
  mmlab::test::qt_app();
  const QString mmlab_bin = real_trainer();
  if (mmlab_bin.isEmpty()) GTEST_SKIP() << skip_message();
  mmlab::test::TempDir dir;
  mmlab::test::ScopedEnv data_home("XDG_DATA_HOME", qpath(dir / "data"));
  mmlab::test::ScopedEnv bin("MMLAB_BIN", mmlab_bin);
  mmlab::test::ScopedSettings settings(qpath(dir / "settings"));
  const int steps = 15;
  const json experiment = {
      {"name", "parallel"},
      {"defaults",
       {{"model", {{"d_model", 32}, {"n_block", 1}, {"family", "mamba"}}},
        {"train",
         {{"steps", steps},
          {"batch_size", 2},
          {"seq_len", 32},
          {"eval_every", 0},
          {"checkpoint_every", 0},
          {"device", "cpu"},
          {"threads", 1}}},
        {"data", {{"source", write_synthetic_corpus(dir).toStdString()}, {"tokenizer", "byte"}}}}},
      {"runs",
       {{{"name", "a"}, {"seed", 1}}, {{"name", "b"}, {"seed", 2}}, {{"name", "c"}, {"seed", 3}}}}};

  mmlab::ui::MainWindow w(qpath(dir / "parallel.sqlite"));
  w.set_quiet(true);
  w.set_runs_per_device(2);
  EXPECT_EQ(QSettings().value("runs/per_device").toInt(), 2);
  mmlab::ui::RunManager& m = w.manager();
  int most_at_once = 0;
  QObject::connect(&m, &mmlab::ui::RunManager::jobChanged,
                   [&] { most_at_once = std::max(most_at_once, m.active_count()); });
  QString err;
  ASSERT_EQ(w.launch_experiment(experiment, &err), 3) << err.toStdString();
  // Two trainers start at once; the third waits for one of them.
  EXPECT_EQ(m.active_count(), 2);
  ASSERT_EQ(m.jobs().size(), 3u);
  EXPECT_EQ(m.jobs()[2].state, mmlab::ui::RunState::kQueued);
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        return std::all_of(m.jobs().begin(), m.jobs().end(),
                           [](const auto& j) { return mmlab::ui::is_done(j.state); });
      },
      240000));
  EXPECT_EQ(most_at_once, 2);
  mmlab::store::ResultsStore s((dir / "parallel.sqlite").string());
  for (const auto& j : m.jobs()) {
    EXPECT_EQ(j.state, mmlab::ui::RunState::kFinished)
        << j.name.toStdString() << ": " << j.message.toStdString();
    const auto row = s.reader().get_run(j.run_id);
    EXPECT_EQ(row.status, mmlab::store::RunStatus::kFinished);
    EXPECT_EQ(int64_t(s.reader().points(j.run_id, "loss").size()), steps) << row.name;
  }
  // The setting holds for the next start of the studio.
  mmlab::ui::MainWindow again(qpath(dir / "parallel.sqlite"));
  EXPECT_EQ(again.manager().max_per_device(), 2);
}
