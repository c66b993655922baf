// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QFile>
#include <QSignalSpy>
#include <iostream>

#include "core/store/store.h"
#include "qt_app.h"
#include "test_support.h"
#include "ui/results_session.h"
#include "ui/run_table_model.h"

using namespace mmlab::ui;
namespace store = mmlab::store;

namespace {

std::vector<store::RunRow> sample_rows() {
  std::vector<store::RunRow> rows(4);
  const char* names[] = {"mamba", "moe-mamba", "transformer", "moe-mamba-b"};
  const char* fams[] = {"mamba", "moe-mamba", "transformer", "moe-mamba"};
  const store::RunStatus st[] = {store::RunStatus::kFinished, store::RunStatus::kRunning,
                                 store::RunStatus::kFailed, store::RunStatus::kLost};
  const double loss[] = {3.5, 3.1, 4.2, 3.3};
  for (int i = 0; i < 4; ++i) {
    rows[i].id = i + 1;
    rows[i].name = names[i];
    rows[i].family = fams[i];
    rows[i].status = st[i] == store::RunStatus::kLost ? store::RunStatus::kRunning : st[i];
    rows[i].effective_status = st[i];
    rows[i].final_loss_smooth = loss[i];
    rows[i].params_total = (i + 1) * 1500000;
    rows[i].step = 10 * (4 - i);
    rows[i].total_steps = 100;
  }
  rows[2].final_loss_smooth.reset();
  rows[0].tags = {"baseline"};
  rows[1].tags = {"paper", "sweep"};
  return rows;
}

}  // namespace

TEST(RunTableModel, NameTooltipShowsTheOpImplementationsUsed) {
  mmlab::test::qt_app();
  RunTableModel m;
  auto rows = sample_rows();
  rows[0].ops_used = R"({"causal_conv1d":"cuda","selective_scan":"reference"})";
  rows[1].ops_used = "{}";
  m.set_rows(rows);
  EXPECT_EQ(m.data(m.index(0, RunTableModel::kName), Qt::ToolTipRole).toString(),
            "Op implementations: causal_conv1d=cuda, selective_scan=reference");
  EXPECT_FALSE(m.data(m.index(1, RunTableModel::kName), Qt::ToolTipRole).isValid());
  EXPECT_FALSE(m.data(m.index(2, RunTableModel::kName), Qt::ToolTipRole).isValid());
}

TEST(RunTableModel, FormatsCellsAndSortsByRawValues) {
  mmlab::test::qt_app();
  RunTableModel m;
  m.set_rows(sample_rows());
  EXPECT_EQ(m.rowCount(), 4);
  EXPECT_EQ(m.data(m.index(0, RunTableModel::kParams), Qt::DisplayRole).toString(), "1.50M");
  EXPECT_EQ(m.data(m.index(0, RunTableModel::kSteps), Qt::DisplayRole).toString(), "40 / 100");
  EXPECT_EQ(m.data(m.index(3, RunTableModel::kStatus), Qt::DisplayRole).toString(), "lost");
  EXPECT_EQ(m.data(m.index(1, RunTableModel::kFinalLoss), Qt::DisplayRole).toString(), "3.1000");
  EXPECT_FALSE(m.data(m.index(2, RunTableModel::kFinalLoss), Qt::DisplayRole).isValid());
  RunFilterProxy p;
  p.setSourceModel(&m);
  p.sort(RunTableModel::kFinalLoss, Qt::AscendingOrder);
  // 3.1 (moe-mamba), 3.3, 3.5, then the run without a loss last.
  QStringList order;
  for (int r = 0; r < p.rowCount(); ++r) order << p.index(r, 0).data().toString();
  EXPECT_EQ(order, (QStringList{"moe-mamba", "moe-mamba-b", "mamba", "transformer"}));
  p.sort(RunTableModel::kParams, Qt::DescendingOrder);
  EXPECT_EQ(p.index(0, 0).data(RunTableModel::kIdRole).toLongLong(), 4);
  EXPECT_EQ(RunTableModel::human_duration(3725), "1 h 02 min");
  EXPECT_EQ(RunTableModel::human_duration(42), "42 s");
}

TEST(RunFilterProxy, FiltersByTextFamilyStatusAndTag) {
  mmlab::test::qt_app();
  RunTableModel m;
  m.set_rows(sample_rows());
  RunFilterProxy p;
  p.setSourceModel(&m);
  p.set_text("MOE");
  EXPECT_EQ(p.rowCount(), 2);
  p.set_text("sweep");  // matches a tag
  EXPECT_EQ(p.rowCount(), 1);
  p.set_text("");
  p.set_family("moe-mamba");
  EXPECT_EQ(p.rowCount(), 2);
  p.set_status("lost");
  ASSERT_EQ(p.rowCount(), 1);
  EXPECT_EQ(p.index(0, 0).data().toString(), "moe-mamba-b");
  p.set_family("");
  p.set_status("");
  p.set_tag("baseline");
  ASSERT_EQ(p.rowCount(), 1);
  EXPECT_EQ(p.index(0, 0).data().toString(), "mamba");
}

TEST(RunTableModel, SameRunsUpdateInPlaceSoSelectionsSurvive) {
  mmlab::test::qt_app();
  RunTableModel m;
  m.set_rows(sample_rows());
  QSignalSpy reset(&m, &QAbstractItemModel::modelReset);
  QSignalSpy changed(&m, &QAbstractItemModel::dataChanged);
  auto rows = sample_rows();
  rows[1].step = 99;
  m.set_rows(rows);
  EXPECT_EQ(reset.count(), 0);
  EXPECT_EQ(changed.count(), 1);
  rows.pop_back();
  m.set_rows(rows);
  EXPECT_EQ(reset.count(), 1);
}

TEST(ResultsSession, ReadsRunsTagsNotesAndPointsAndReportsBadFiles) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const QString db = QString::fromStdString((dir / "r.sqlite").string());
  {
    store::ResultsStore s(db.toStdString());
    const int64_t e = s.ensure_experiment("quick");
    store::NewRun nr;
    nr.experiment_id = e;
    nr.name = "mamba";
    nr.family = "mamba";
    nr.total_steps = 3;
    const int64_t id = s.create_run(nr);
    s.writer(id).append_points(
        {{"loss", 1, 64, 0.1, 5.0}, {"loss", 2, 128, 0.2, 4.0}, {"loss_smooth", 2, 128, 0.2, 4.5}});
  }
  ResultsSession session;
  session.set_poll_interval(0);
  QString err;
  ASSERT_TRUE(session.open(db, &err)) << err.toStdString();
  ASSERT_EQ(session.runs().size(), 1u);
  const int64_t id = session.runs()[0].id;
  EXPECT_EQ(session.runs()[0].experiment, "quick");
  EXPECT_DOUBLE_EQ(*session.runs()[0].final_loss_smooth, 4.5);
  ASSERT_TRUE(session.add_tag(id, "paper", &err));
  EXPECT_EQ(session.runs()[0].tags, (std::vector<std::string>{"paper"}));
  EXPECT_FALSE(session.add_tag(id, "  ", &err));
  EXPECT_FALSE(err.isEmpty());
  ASSERT_TRUE(session.set_note(id, "lr too high?", &err));
  EXPECT_EQ(session.note(id), "lr too high?");

  CurveSet curves;
  curves.set_loader(
      [&](int64_t run, const std::string& m, Series& out) { session.load_points(run, m, out); });
  EXPECT_EQ(curves.series(id, "loss").value, (std::vector<double>{5.0, 4.0}));
  {  // a trainer in another process appends; polling picks up only the new point
    store::ResultsStore s(db.toStdString());
    s.writer(id).append_points({{"loss", 3, 192, 0.3, 3.0}});
  }
  session.poll_points(curves, {id}, "loss");
  EXPECT_EQ(curves.series(id, "loss").value, (std::vector<double>{5.0, 4.0, 3.0}));

  // A file that is not a database: a sentence naming it; the open database stays.
  const QString bad = QString::fromStdString((dir / "bad.sqlite").string());
  QFile f(bad);
  f.open(QIODevice::WriteOnly);
  f.write(QByteArray(4096, 'x'));
  f.close();
  EXPECT_FALSE(session.open(bad, &err));
  EXPECT_TRUE(err.contains("bad.sqlite")) << err.toStdString();
  EXPECT_EQ(session.path(), QFileInfo(db).absoluteFilePath());
  ASSERT_TRUE(session.delete_runs({id}, &err));
  EXPECT_TRUE(session.runs().empty());
}

TEST(ResultsSession, ImportCopiesNewRunsOnceAndNewerSchemasAreRefused) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const std::string main_db = (dir / "main.sqlite").string();
  const std::string gpu_db = (dir / "gpu-server.sqlite").string();
  {
    store::ResultsStore s(gpu_db);
    store::NewRun nr;
    nr.experiment_id = s.ensure_experiment("paper-25m");
    nr.name = "moe-mamba-25m";
    nr.family = "moe-mamba";
    s.create_run(nr);
  }
  ResultsSession session;
  session.set_poll_interval(0);
  QString err, summary;
  ASSERT_TRUE(session.open(QString::fromStdString(main_db), &err)) << err.toStdString();
  EXPECT_TRUE(session.runs().empty());
  ASSERT_TRUE(session.import_from(QString::fromStdString(gpu_db), &summary, &err))
      << err.toStdString();
  EXPECT_EQ(summary, "Imported 1 run(s) from gpu-server.sqlite; 0 already present.");
  ASSERT_EQ(session.runs().size(), 1u);
  EXPECT_EQ(session.runs()[0].name, "moe-mamba-25m");
  ASSERT_TRUE(session.import_from(QString::fromStdString(gpu_db), &summary, &err));
  EXPECT_EQ(summary, "Imported 0 run(s) from gpu-server.sqlite; 1 already present.");

  // A database written by a newer mmlab: refused with a sentence, the current one stays open.
  const std::string newer = (dir / "newer.sqlite").string();
  {
    store::ResultsStore s(newer);
    s.database().exec("PRAGMA user_version = " +
                      std::to_string(store::ResultsStore::schema_version() + 5));
  }
  EXPECT_FALSE(session.open(QString::fromStdString(newer), &err));
  EXPECT_TRUE(err.contains("newer.sqlite")) << err.toStdString();
  EXPECT_EQ(session.runs().size(), 1u);
}

// The issue's budget: a database of 1,000 runs opens in under a second.
TEST(ResultsSessionBench, OpeningADatabaseOf1000RunsTakesUnderASecond) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const std::string db = (dir / "big.sqlite").string();
  {
    store::ResultsStore s(db);
    const int64_t e = s.ensure_experiment("sweep");
    for (int i = 0; i < 1000; ++i) {
      store::NewRun nr;
      nr.experiment_id = e;
      nr.name = "run-" + std::to_string(i);
      nr.family = i % 2 ? "mamba" : "moe-mamba";
      nr.config_json = R"({"model":{"d_model":512}})";
      const int64_t id = s.create_run(nr);
      s.writer(id).append_points(
          {{"loss_smooth", 1, 4096, 0.5, 3.0 + i * 1e-3}, {"tokens_per_s", 1, 4096, 0.5, 50000}});
    }
  }
  QElapsedTimer t;
  t.start();
  ResultsSession session;
  session.set_poll_interval(0);
  QString err;
  ASSERT_TRUE(session.open(QString::fromStdString(db), &err)) << err.toStdString();
  RunTableModel model;
  model.set_rows(session.runs());
  RunFilterProxy proxy;
  proxy.setSourceModel(&model);
  proxy.sort(RunTableModel::kFinalLoss);
  const double ms = t.nsecsElapsed() / 1e6;
  std::cout << "[bench] open + list + sort of 1000 runs: " << ms << " ms\n";
  EXPECT_EQ(proxy.rowCount(), 1000);
  EXPECT_EQ(proxy.index(0, 0).data().toString(), "run-0");
  EXPECT_LT(ms, 1000.0);
}

TEST(ResultsSession, ALockedDatabaseIsReportedWithinSecondsAndWritesFailCleanly) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const std::string db = (dir / "locked.sqlite").string();
  int64_t id = 0;
  store::ResultsStore other(db);
  {
    store::NewRun nr;
    nr.experiment_id = other.ensure_experiment("e");
    nr.name = "r";
    id = other.create_run(nr);
  }
  ResultsSession session;
  session.set_poll_interval(0);
  QString err;
  ASSERT_TRUE(session.open(QString::fromStdString(db), &err)) << err.toStdString();
  other.database().exec("BEGIN EXCLUSIVE");  // another program holds the write lock
  QElapsedTimer t;
  t.start();
  EXPECT_FALSE(session.add_tag(id, "x", &err));
  EXPECT_LT(t.elapsed(), 6000);
  EXPECT_TRUE(err.contains("locked.sqlite")) << err.toStdString();
  std::cout << "[locked] " << t.elapsed() << " ms: " << err.toStdString() << "\n";
  other.database().exec("ROLLBACK");
  EXPECT_TRUE(session.add_tag(id, "x", &err)) << err.toStdString();
  EXPECT_EQ(session.runs()[0].tags, (std::vector<std::string>{"x"}));
}

// How long the chart waits for one 100k-point curve from the database (the GUI thread reads it).
TEST(ResultsSessionBench, LoadingA100kPointCurve) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const std::string db = (dir / "curve.sqlite").string();
  int64_t id = 0;
  {
    store::ResultsStore s(db);
    store::NewRun nr;
    nr.experiment_id = s.ensure_experiment("e");
    nr.name = "long";
    id = s.create_run(nr);
    std::vector<store::MetricPoint> pts;
    for (int i = 1; i <= 100000; ++i)
      pts.push_back({"loss", i, i * 4096LL, i * 0.1, 3.0 + 1.0 / i});
    s.writer(id).append_points(pts);
  }
  ResultsSession session;
  session.set_poll_interval(0);
  QString err;
  ASSERT_TRUE(session.open(QString::fromStdString(db), &err));
  CurveSet curves;
  curves.set_loader(
      [&](int64_t r, const std::string& m, Series& out) { session.load_points(r, m, out); });
  QElapsedTimer t;
  t.start();
  const Series& s = curves.series(id, "loss");
  const double ms = t.nsecsElapsed() / 1e6;
  std::cout << "[bench] load of one 100k-point curve: " << ms << " ms\n";
  ASSERT_EQ(s.size(), 100000u);
  EXPECT_DOUBLE_EQ(s.value[9], 3.1);
  EXPECT_LT(ms, 2000.0);
}
