// SPDX-License-Identifier: GPL-3.0-or-later
// The main window wired to a real database (demo_db.h) and a real child process (fake_trainer.h).
#include <gtest/gtest.h>

#include <QCheckBox>
#include <QDir>
#include <QFile>
#include <QTableView>
#include <QTableWidget>
#include <QTest>
#include <memory>
#include <optional>
#include <vector>

#include "core/results/speedup.h"
#include "demo_db.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/expert_heatmap.h"
#include "ui/main_window.h"

using namespace mmlab::ui;

namespace {

struct WindowTest : ::testing::Test {
  void SetUp() override {
    mmlab::test::qt_app();
    db = QString::fromStdString((dir / "results.sqlite").string());
    ids = mmlab::test::write_demo_db(db.toStdString(), 600);
    env.emplace_back(std::make_unique<mmlab::test::ScopedEnv>(
        "MMLAB_BIN", mmlab::test::write_fake_trainer(dir.path())));
    env.emplace_back(std::make_unique<mmlab::test::ScopedEnv>("FAKE_ID_FROM_NAME", "1"));
    env.emplace_back(std::make_unique<mmlab::test::ScopedEnv>("FAKE_LOG", std::nullopt));
  }
  void TearDown() override { env.clear(); }  // puts back what the environment had
  mmlab::test::TempDir dir;
  std::vector<std::unique_ptr<mmlab::test::ScopedEnv>> env;
  QString db;
  std::vector<int64_t> ids;
};

}  // namespace

TEST_F(WindowTest, BrowserShowsEveryRunWithLostDetectedAndFilters) {
  MainWindow w(db);
  w.set_quiet(true);
  EXPECT_EQ(w.session().path(), QFileInfo(db).absoluteFilePath());
  EXPECT_EQ(w.proxy().rowCount(), 6);
  int lost = 0, running = 0;
  for (int r = 0; r < w.proxy().rowCount(); ++r) {
    const QString st = w.proxy().index(r, RunTableModel::kStatus).data().toString();
    lost += st == "lost";
    running += st == "running";
  }
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(running, 1);  // the demo's running run has this process as its pid: alive
  w.proxy().set_text("moe-mamba");
  EXPECT_EQ(w.proxy().rowCount(), 3);  // two seeds + parallel
  w.proxy().set_tag("paper");
  EXPECT_EQ(w.proxy().rowCount(), 2);
  w.proxy().set_tag("");
  w.proxy().set_text("");
  // Nothing selected: the chart follows the running run; selecting overrides.
  EXPECT_EQ(w.plotted_runs(), (std::vector<int64_t>{ids[4]}));
  w.select_runs({ids[0], ids[3]});
  EXPECT_EQ(w.selected_runs(), (std::vector<int64_t>{ids[0], ids[3]}));
  EXPECT_EQ(w.plot().runs(), (std::vector<int64_t>{ids[0], ids[3]}));
  // The shown chart asks for its curves; they arrive from the worker thread.
  w.show();
  EXPECT_TRUE(
      QTest::qWaitFor([&] { return w.curves().series(ids[0], "loss").size() == 600u; }, 10000));
  EXPECT_TRUE(QTest::qWaitFor([&] { return w.plot().drawn(ids[3]).size() > 0; }, 10000));
  // The wall-clock axis places a run's points at its stored started_at plus their wall.
  const mmlab::store::RunRow* r0 = w.session().run(ids[0]);
  ASSERT_TRUE(r0 && r0->started_at);
  EXPECT_EQ(w.curves().find(ids[0])->start_time, *r0->started_at);
}

TEST_F(WindowTest, CompareShowsOnlyDifferencesAndThePapersSpeedup) {
  MainWindow w(db);
  w.set_quiet(true);
  w.select_runs({ids[0], ids[3]});  // transformer (baseline) vs moe-mamba seed 1
  // The curves are read on the worker thread; the tables refresh when they arrive.
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.pending_curves() == 0; }, 10000));
  auto* diff_table = w.findChild<QTableWidget*>("diffTable");
  auto* speedup = w.findChild<QTableWidget*>("speedupTable");
  ASSERT_NE(diff_table, nullptr);
  ASSERT_NE(speedup, nullptr);
  QStringList keys;
  for (int r = 0; r < diff_table->rowCount(); ++r)
    keys << diff_table->verticalHeaderItem(r)->text();
  EXPECT_TRUE(keys.contains("model.family"));
  EXPECT_TRUE(keys.contains("name"));
  EXPECT_FALSE(keys.contains("model.d_model"));  // equal: hidden in only-differences mode
  // Speedup against the baseline's own store values, by the paper's definition
  // (core/results/speedup.h; test_compare_speedup.cpp checks it against `mmlab report`).
  mmlab::store::ResultsStore s(db.toStdString());
  auto curve = [&](int64_t id) {
    mmlab::LossCurve c;
    for (const auto& p : s.points(id, "loss_smooth")) {
      c.tokens.push_back(double(p.tokens));
      c.value.push_back(p.value);
    }
    return c;
  };
  const mmlab::LossCurve base = curve(ids[0]), moe = curve(ids[3]);
  const std::optional<double> reach = mmlab::tokens_to_reach(moe, base.value.back());
  const std::optional<double> times = mmlab::speedup(base, moe);
  ASSERT_TRUE(reach && times);
  ASSERT_EQ(speedup->rowCount(), 2);
  EXPECT_EQ(speedup->item(1, 1)->text(), RunTableModel::human_count(*reach));
  EXPECT_EQ(speedup->item(1, 2)->text(), QStringLiteral("%1×").arg(*times, 0, 'f', 2));
  EXPECT_GT(*times, 1.0);  // MoE-Mamba needs fewer tokens than the Transformer in the demo data
  EXPECT_EQ(speedup->item(0, 2)->text(), "1.00×");
}

TEST_F(WindowTest, QuickComparisonRunsThroughTheQueueAndStreamsCurves) {
  MainWindow w(db);
  w.set_quiet(true);
  QString err;
  ASSERT_EQ(w.launch_experiment(ExperimentDialog::default_document(), &err), 4)
      << err.toStdString();
  // The experiment file the trainer reads was written next to the database.
  const QStringList files =
      QDir(experiments_dir_for(db)).entryList({"quick-compare-*.json"}, QDir::Files);
  ASSERT_EQ(files.size(), 1);
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        for (const RunJob& j : w.manager().jobs())
          if (!is_done(j.state)) return false;
        return true;
      },
      20000));
  ASSERT_EQ(w.manager().jobs().size(), 4u);
  for (const RunJob& j : w.manager().jobs()) {
    EXPECT_EQ(j.state, RunState::kFinished)
        << j.name.toStdString() << ": " << j.message.toStdString();
    EXPECT_EQ(j.device, "cpu");
    ASSERT_GE(j.run_id, 100);
    // The streamed points are in the chart's data: loss 9, 8, 7 at steps 1..3.
    const Series& s = w.curves().series(j.run_id, "loss");
    EXPECT_EQ(s.value, (std::vector<double>{9, 8, 7}));
    EXPECT_EQ(s.tokens, (std::vector<double>{256, 512, 768}));
  }
  EXPECT_EQ(w.manager().jobs()[0].args.at(3), "moe-mamba");
  EXPECT_EQ(w.manager().jobs()[0].args.at(5), w.session().path());
}

TEST_F(WindowTest, BadInputGivesAMessageAndTheWindowKeepsWorking) {
  MainWindow w(db);
  w.set_quiet(true);
  const QString bad = QString::fromStdString((dir / "corrupt.sqlite").string());
  QFile f(bad);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write("SQLite format 3\0garbage garbage garbage", 40);
  f.write(QByteArray(8192, '\x7f'));
  f.close();
  EXPECT_FALSE(w.open_database(bad));
  EXPECT_TRUE(w.last_message().contains("corrupt.sqlite")) << w.last_message().toStdString();
  EXPECT_EQ(w.session().path(), QFileInfo(db).absoluteFilePath());
  EXPECT_EQ(w.proxy().rowCount(), 6);

  const QString exp = QString::fromStdString((dir / "broken.json").string());
  QFile e(exp);
  ASSERT_TRUE(e.open(QIODevice::WriteOnly));
  e.write("{\n  \"name\": \"x\",\n  \"runs\": [\n");
  e.close();
  w.open_experiment_file(exp);
  EXPECT_TRUE(w.last_message().contains("broken.json")) << w.last_message().toStdString();
  EXPECT_TRUE(w.last_message().contains("not valid JSON"));

  // A missing trainer binary: the job fails with a sentence, nothing else breaks.
  w.manager().set_program(QString::fromStdString((dir / "missing-mmlab").string()));
  QString err;
  ASSERT_EQ(w.launch_experiment(ExperimentDialog::default_document(), &err), 4);
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().jobs().back().state); }, 10000));
  EXPECT_EQ(w.manager().jobs()[0].state, RunState::kFailed);
  EXPECT_TRUE(w.manager().jobs()[0].message.contains("Could not start"));
  EXPECT_EQ(w.proxy().rowCount(), 6);
}

TEST_F(WindowTest, ExpertHeatmapShowsTheMeanLoadPerColumn) {
  MainWindow w(db);
  w.set_quiet(true);
  w.select_runs({ids[1], ids[3]});  // mamba (no experts), moe-mamba: the MoE run is shown
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.pending_curves() == 0; }, 10000));
  ExpertHeatmap& h = w.heatmap();
  EXPECT_EQ(h.layers(), (QStringList{"1", "3"}));
  EXPECT_EQ(h.experts(), 8);
  // 600 steps logged every 10 steps: 60 points, one column each.
  ASSERT_EQ(h.columns(), 60);
  mmlab::store::ResultsStore s(db.toStdString());
  const auto pts = s.points(ids[3], "expert_load/1/2");
  ASSERT_EQ(pts.size(), 60u);
  EXPECT_DOUBLE_EQ(h.cell(0, 2), pts[0].value);
  EXPECT_DOUBLE_EQ(h.cell(59, 2), pts[59].value);
  w.select_runs({ids[1]});
  EXPECT_EQ(h.experts(), 0);
}

TEST_F(WindowTest, DeleteRemovesTheSelectedRunsAndTheirCurves) {
  MainWindow w(db);
  w.set_quiet(true);
  w.select_runs({ids[1]});
  w.curves().series(ids[1], "loss");
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.pending_curves() == 0; }, 10000));
  EXPECT_EQ(w.curves().series(ids[1], "loss").size(), 600u);  // read by the worker
  ASSERT_TRUE(w.curves().contains(ids[1]));
  w.show();
  QApplication::setActiveWindow(&w);
  ASSERT_TRUE(QTest::qWaitForWindowActive(&w));
  w.table().setFocus();
  QTest::keyClick(&w.table(), Qt::Key_Delete);  // the Del shortcut, as a user presses it
  EXPECT_EQ(w.proxy().rowCount(), 5);
  EXPECT_FALSE(w.curves().contains(ids[1]));
  mmlab::store::ResultsStore s(db.toStdString());
  EXPECT_FALSE(s.find_run(ids[1]).has_value());
}

TEST_F(WindowTest, ClosingWhileTrainingStopsTheRunsGracefully) {
  MainWindow w(db);
  w.set_quiet(true);  // quiet: "stop them" without asking
  const int a = w.manager().enqueue("slow-a", "cpu", {"train", "x.json", "--run", "slow-a"}, db);
  const int b = w.manager().enqueue("slow-b", "cpu", {"train", "x.json", "--run", "slow-b"}, db);
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.manager().job(a)->step >= 2; }, 5000));
  w.show();
  EXPECT_TRUE(w.close());
  EXPECT_EQ(w.manager().active_count(), 0);
  EXPECT_EQ(w.manager().job(a)->state, RunState::kStopped);
  EXPECT_EQ(w.manager().job(a)->last_status,
            mmlab::RunStatus::kStopped);                     // the child's own graceful stop
  EXPECT_EQ(w.manager().job(b)->state, RunState::kStopped);  // never started
  EXPECT_EQ(w.manager().job(b)->attempts, 0);
}
