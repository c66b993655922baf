// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's compare view and `mmlab report` (the binary of this build tree) over the same
// database give the same speedups, digit for digit: both are core/results/speedup.h.
#include <gtest/gtest.h>

#include <QComboBox>
#include <QProcess>
#include <QStringList>
#include <QTableWidget>
#include <QTest>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/store/store.h"
#include "qt_app.h"
#include "test_support.h"
#include "ui/main_window.h"
#include "ui/run_table_model.h"

using namespace mmlab::ui;

namespace {

// (tokens, loss_smooth) per run. The baseline's smoothed loss dips to 2.9 at 400 tokens and ends
// at 3.0 at 1000: it first reached its final loss at 400 tokens, so its speedup against itself
// is 1.00× (its last point would make it 1000 / 400 = 2.50×).
const std::vector<std::pair<std::string, std::vector<std::pair<int64_t, double>>>> kRuns = {
    {"mamba", {{200, 3.5}, {400, 2.9}, {600, 3.05}, {800, 3.1}, {1000, 3.0}}},
    {"moe-mamba", {{100, 3.6}, {200, 3.2}, {300, 2.99}, {400, 2.7}}},
    {"transformer", {{400, 3.3}, {800, 3.0}, {1200, 2.95}}},
    {"transformer-moe", {{500, 3.4}, {1000, 3.2}}},  // never reaches 3.0
};

std::vector<int64_t> write_db(const std::string& path) {
  mmlab::store::ResultsStore s(path);
  const int64_t exp = s.ensure_experiment("speedups");
  std::vector<int64_t> ids;
  for (const auto& [name, curve] : kRuns) {
    mmlab::store::NewRun nr;
    nr.experiment_id = exp;
    nr.name = name;
    nr.family = name;
    nr.total_steps = int64_t(curve.size());
    const int64_t id = s.create_run(nr);
    std::vector<mmlab::store::MetricPoint> pts;
    for (size_t i = 0; i < curve.size(); ++i)
      pts.push_back({"loss_smooth", int64_t(i + 1), curve[i].first, double(i), curve[i].second});
    s.writer(id).append_points(pts);
    s.writer(id).set_status(mmlab::store::RunStatus::kFinished);
    ids.push_back(id);
  }
  return ids;
}

// Run name -> the speedup cell of `mmlab report`'s Markdown table ("" when it has none).
std::map<std::string, std::string> report_speedups(const QString& db,
                                                   const QString& baseline = "mamba") {
  QProcess p;
  p.start(QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab"),
          {"report", "--db", db, "--experiment", "speedups", "--baseline", baseline});
  EXPECT_TRUE(p.waitForFinished(60000));
  EXPECT_EQ(p.exitCode(), 0) << p.readAllStandardError().toStdString();
  std::map<std::string, std::string> out;
  for (const QString& line : QString::fromUtf8(p.readAllStandardOutput()).split('\n')) {
    const QStringList cells = line.split('|');
    if (cells.size() < 9) continue;
    QString speed = cells[8].trimmed();
    const bool run_row = speed.contains(QStringLiteral("×")) || speed == QStringLiteral("–");
    if (!run_row) continue;  // the header, the delimiter row, the text around the table
    speed.remove(QStringLiteral(" (baseline)"));
    out[cells[1].trimmed().toStdString()] =
        speed == QStringLiteral("–") ? std::string() : speed.toStdString();
  }
  return out;
}

}  // namespace

// A window on a database of kRuns with every run selected and its curves loaded.
class CompareSpeedup : public ::testing::Test {
 protected:
  void SetUp() override {
    mmlab::test::qt_app();
    db_ = QString::fromStdString((dir_ / "results.sqlite").string());
    ids_ = write_db(db_.toStdString());
    window_ = std::make_unique<MainWindow>(db_);
    window_->set_quiet(true);
    select_all();
  }
  void select_all() {
    window_->select_runs(ids_);
    ASSERT_TRUE(QTest::qWaitFor([&] { return window_->pending_curves() == 0; }, 10000));
  }
  mmlab::test::TempDir dir_;
  QString db_;
  std::vector<int64_t> ids_;
  std::unique_ptr<MainWindow> window_;
};

TEST_F(CompareSpeedup, StudioAndReportAgreeDigitForDigit) {
  MainWindow& w = *window_;  // the first selected run (mamba) is the compare view's baseline
  const QString& db = db_;
  auto* table = w.findChild<QTableWidget*>("speedupTable");
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(table->rowCount(), int(kRuns.size()));

  const std::map<std::string, std::string> report = report_speedups(db);
  ASSERT_EQ(report.size(), kRuns.size());
  for (size_t i = 0; i < kRuns.size(); ++i) {
    const std::string& name = kRuns[i].first;
    QString studio = table->item(int(i), 2)->text();
    if (studio == QStringLiteral("—")) studio.clear();
    EXPECT_EQ(studio.toStdString(), report.at(name)) << name;
  }
  // The values themselves: 400/400, 400/300, 400/800 and never.
  EXPECT_EQ(report.at("mamba"), "1.00×");
  EXPECT_EQ(table->item(0, 2)->text(), "1.00×");
  EXPECT_EQ(table->item(0, 1)->text(), RunTableModel::human_count(400));
  EXPECT_EQ(report.at("moe-mamba"), "1.33×");
  EXPECT_EQ(report.at("transformer"), "0.50×");
  EXPECT_EQ(report.at("transformer-moe"), "");
}

// The baseline is the user's choice: picking another selected run re-measures every row against
// it, marks it, and still gives `mmlab report --baseline`'s numbers.
TEST_F(CompareSpeedup, TheChosenBaselineIsMarkedAndMatchesTheReport) {
  MainWindow& w = *window_;
  const QString& db = db_;
  auto* table = w.findChild<QTableWidget*>("speedupTable");
  auto* baseline = w.findChild<QComboBox*>("baselineCombo");
  ASSERT_NE(table, nullptr);
  ASSERT_NE(baseline, nullptr);
  ASSERT_EQ(baseline->count(), int(kRuns.size()));
  EXPECT_EQ(baseline->currentIndex(), 0);  // by default the first selected run
  EXPECT_TRUE(table->item(0, 0)->text().endsWith(" (baseline)"))
      << table->item(0, 0)->text().toStdString();

  baseline->setCurrentIndex(2);  // transformer: final 2.95 first reached at 1200 tokens
  ASSERT_EQ(table->rowCount(), int(kRuns.size()));
  EXPECT_TRUE(table->item(2, 0)->text().endsWith(" (baseline)"));
  EXPECT_FALSE(table->item(0, 0)->text().endsWith(" (baseline)"));
  const std::map<std::string, std::string> report = report_speedups(db, "transformer");
  for (size_t i = 0; i < kRuns.size(); ++i) {
    QString studio = table->item(int(i), 2)->text();
    if (studio == QStringLiteral("—")) studio.clear();
    EXPECT_EQ(studio.toStdString(), report.at(kRuns[i].first)) << kRuns[i].first;
  }
  // 1200/400 (mamba dips to 2.9 at 400), 1200/400 (moe-mamba), 1200/1200, never.
  EXPECT_EQ(table->item(0, 2)->text(), "3.00×");
  EXPECT_EQ(table->item(1, 2)->text(), "3.00×");
  EXPECT_EQ(table->item(2, 2)->text(), "1.00×");
  EXPECT_EQ(table->item(3, 2)->text(), "—");

  // The choice survives a refresh of the same selection.
  select_all();
  EXPECT_EQ(baseline->currentIndex(), 2);
  EXPECT_EQ(table->item(2, 2)->text(), "1.00×");
}
