// SPDX-License-Identifier: GPL-3.0-or-later
// The report's Markdown/CSV tables over a small store filled by hand (the speedup's arithmetic is
// tests/core/results/speedup_test.cpp).
#include "core/cli/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/util/error.h"
#include "test_support.h"

namespace mmlab::cli {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Report, DefaultBaselineIsTheFirstMambaRunElseTheFirstRun) {
  std::vector<store::RunRow> runs(3);
  runs[0].id = 5;
  runs[0].family = "transformer";
  runs[1].id = 7;
  runs[1].family = "mamba";
  runs[2].id = 6;
  runs[2].family = "mamba";
  EXPECT_EQ(default_baseline(runs), 2u);
  runs[1].family = runs[2].family = "moe-mamba";
  EXPECT_EQ(default_baseline(runs), 0u);
  EXPECT_EQ(default_baseline({}), std::nullopt);
}

TEST(ReportFormat, Numbers) {
  EXPECT_EQ(format_count(7), "7");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1234), "1.23K");
  EXPECT_EQ(format_count(45600000), "45.6M");
  EXPECT_EQ(format_count(542000000), "542M");
  EXPECT_EQ(format_count(999999), "1.00M");
  EXPECT_EQ(format_count(1.5e9), "1.50B");
  EXPECT_EQ(format_fixed(3.14159, 2), "3.14");
  EXPECT_EQ(format_fixed(std::nullopt, 2), "–");
  EXPECT_EQ(format_exact(0.1), "0.1");
  EXPECT_EQ(format_exact(3.0), "3");
  EXPECT_EQ(format_exact(kNaN), "nan");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(display_width("2.00×"), 5u);
}

TEST(ReportFormat, TextTableAlignsColumnsWithoutTrailingSpaces) {
  EXPECT_EQ(render_text_table({"id", "name"}, {{"1", "a"}, {"10", "long name"}}, {true, false}),
            "id  name\n"
            " 1  a\n"
            "10  long name\n");
  EXPECT_EQ(render_text_table({}, {{"k:", "v"}}, {false, false}), "k:  v\n");
}

// A small experiment with a known report: the mamba baseline ends at loss 3.0 after 4000 tokens;
// moe-mamba reaches exactly 3.0 at 2000 tokens (2x); the transformer never gets there.
class ReportTable : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<store::ResultsStore>(dir_ / "results.sqlite");
    const int64_t exp = db_->ensure_experiment("paper");
    add_run(exp, "transformer", "transformer", 1234, 1234, 4, 8,
            {{1000, 5.5}, {2000, 4.8}, {3000, 4.2}, {4000, 3.9}}, {});
    add_run(exp, "mamba", "mamba", 25600000, 25600000, 4, 4,
            {{1000, 5.0}, {2000, 4.0}, {3000, 3.5}, {4000, 3.0}}, {3.6, 3.2});
    add_run(exp, "moe|mamba", "moe-mamba", 26000000, 542000000, 4, 4,
            {{1000, 4.5}, {2000, 3.0}, {3000, 2.8}, {4000, 2.6}}, {3.1, 2.7});
    db_->ensure_experiment("empty");
  }

  void add_run(int64_t exp, const std::string& name, const std::string& family, int64_t active,
               int64_t total, int64_t step, int64_t total_steps,
               const std::vector<std::pair<int64_t, double>>& loss,
               const std::vector<double>& val) {
    store::NewRun nr;
    nr.experiment_id = exp;
    nr.name = name;
    nr.family = family;
    nr.total_steps = total_steps;
    const int64_t id = db_->create_run(nr);
    store::RunStart start;
    start.pid = 1;
    start.host = store::current_host();
    start.params_active = active;
    start.params_total = total;
    db_->writer(id).mark_started(start);
    std::vector<store::MetricPoint> points;
    for (size_t i = 0; i < loss.size(); ++i) {
      points.push_back(
          {"loss_smooth", static_cast<int64_t>(i + 1), loss[i].first, 1.0 * i, loss[i].second});
    }
    for (size_t i = 0; i < val.size(); ++i) {
      points.push_back({"val_loss", static_cast<int64_t>(2 * (i + 1)),
                        static_cast<int64_t>(2000 * (i + 1)), 1.0 * i, val[i]});
    }
    db_->writer(id).append_points(points);
    db_->writer(id).heartbeat(step, loss.back().first);
    db_->writer(id).set_status(step == total_steps ? store::RunStatus::kFinished
                                                   : store::RunStatus::kStopped);
  }

  test::TempDir dir_;
  std::unique_ptr<store::ResultsStore> db_;
};

TEST_F(ReportTable, MarkdownHasExactCells) {
  const auto report = build_report(db_->reader(), *db_->reader().find_experiment("paper"), "");
  EXPECT_EQ(report.baseline, "mamba");
  EXPECT_EQ(report.baseline_id, 2);
  ASSERT_EQ(report.rows.size(), 3u);
  EXPECT_DOUBLE_EQ(*report.rows[2].speedup, 2.0);

  const std::string expected =
      "## paper\n"
      "\n"
      "Baseline: **mamba** (run 2). Speedup: tokens the baseline needed to reach its final "
      "smoothed loss ÷ tokens the run needed to reach that loss (–: never reached).\n"
      "\n"
      "| name        | family      | params (active / total) | steps | tokens | final loss "
      "(smoothed) | best val loss |          speedup |\n"
      "| ----------- | ----------- | ----------------------: | ----: | -----: | "
      "--------------------: | ------------: | ---------------: |\n"
      "| transformer | transformer |           1.23K / 1.23K |   4/8 |  4.00K |                "
      "3.9000 |             – |                – |\n"
      "| mamba       | mamba       |           25.6M / 25.6M |     4 |  4.00K |                "
      "3.0000 |        3.2000 | 1.00× (baseline) |\n"
      "| moe\\|mamba  | moe-mamba   |            26.0M / 542M |     4 |  4.00K |                "
      "2.6000 |        2.7000 |            2.00× |\n";
  EXPECT_EQ(render_markdown({report}), expected);
}

TEST_F(ReportTable, NamedBaselineAndEmptyExperiment) {
  const auto report =
      build_report(db_->reader(), *db_->reader().find_experiment("paper"), "moe|mamba");
  EXPECT_EQ(report.baseline, "moe|mamba");
  // The others never reach moe-mamba's final 2.6.
  EXPECT_EQ(report.rows[0].speedup, std::nullopt);
  EXPECT_EQ(report.rows[1].speedup, std::nullopt);
  EXPECT_DOUBLE_EQ(*report.rows[2].speedup, 1.0);

  const auto empty = build_report(db_->reader(), *db_->reader().find_experiment("empty"), "");
  EXPECT_TRUE(empty.rows.empty());
  EXPECT_EQ(render_markdown({empty}), "## empty\n\nNo runs.\n");
}

TEST_F(ReportTable, UnknownBaselineListsTheRuns) {
  try {
    build_report(db_->reader(), *db_->reader().find_experiment("paper"), "s4");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no run named \"s4\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("transformer, mamba, moe|mamba"), std::string::npos)
        << e.what();
  }
}

TEST_F(ReportTable, CsvHasRawNumbers) {
  const auto report = build_report(db_->reader(), *db_->reader().find_experiment("paper"), "");
  EXPECT_EQ(render_csv({report}),
            "experiment,run,name,family,status,params_active,params_total,step,total_steps,tokens,"
            "final_loss_smooth,best_val_loss,speedup,baseline\n"
            "paper,1,transformer,transformer,stopped,1234,1234,4,8,4000,3.9,,,0\n"
            "paper,2,mamba,mamba,finished,25600000,25600000,4,4,4000,3,3.2,1,1\n"
            "paper,3,moe|mamba,moe-mamba,finished,26000000,542000000,4,4,4000,2.6,2.7,2,0\n");
}

}  // namespace
}  // namespace mmlab::cli
