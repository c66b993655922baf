// SPDX-License-Identifier: GPL-3.0-or-later
// The terminal progress bar: one line that fits the terminal, so a redraw (\r) stays in place.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/train/progress.h"

namespace mmlab {
namespace {

ProgressBarState quick_compare_run() {
  ProgressBarState s;
  s.name = "transformer-moe";
  s.run_index = 2;
  s.run_count = 4;
  s.step = 150;
  s.total_steps = 300;
  s.loss_smooth = 2.25971;
  s.tokens_per_s = 3412;
  s.eta_run_s = 42;
  s.eta_experiment_s = 42 + 2 * 84;
  return s;
}

TEST(ProgressBar, An80ColumnLineNeverWrapsAndSaysWhichRunAndTheExperimentsEta) {
  const std::string line = format_progress_bar(quick_compare_run(), 80);
  EXPECT_EQ(line.size(), 79u) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.rfind("run 2 of 4  transformer-moe [", 0), 0u) << line;
  EXPECT_NE(line.find(" 150/300"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 00:42 (all 03:30)"), std::string::npos) << line;
  // Half done: half of the bar is filled.
  const size_t open = line.find('['), close = line.find(']');
  const std::string bar = line.substr(open + 1, close - open - 1);
  EXPECT_EQ(std::count(bar.begin(), bar.end(), '#'), static_cast<long>(bar.size() / 2)) << bar;
}

TEST(ProgressBar, NarrowTerminalsDropDetailsFirstAndWideOnesShowEverything) {
  const std::string wide = format_progress_bar(quick_compare_run(), 200);
  EXPECT_EQ(wide.size(), 199u);
  EXPECT_NE(wide.find("loss 2.2597"), std::string::npos) << wide;
  EXPECT_NE(wide.find("3412 tok/s"), std::string::npos) << wide;
  for (int columns : {100, 80, 60, 40, 20, 5}) {
    SCOPED_TRACE(columns);
    const std::string line = format_progress_bar(quick_compare_run(), columns);
    EXPECT_EQ(line.size(), static_cast<size_t>(columns - 1)) << line;
    if (columns >= 40) {
      EXPECT_NE(line.find("ETA"), std::string::npos) << line;
    }
  }
  const std::string narrow = format_progress_bar(quick_compare_run(), 60);
  EXPECT_EQ(narrow.find("tok/s"), std::string::npos) << narrow;
  // A single run has no position and no experiment ETA.
  ProgressBarState alone = quick_compare_run();
  alone.run_count = 0;
  const std::string one = format_progress_bar(alone, 80);
  EXPECT_EQ(one.rfind("transformer-moe [", 0), 0u) << one;
  EXPECT_EQ(one.find("all"), std::string::npos) << one;
}

}  // namespace
}  // namespace mmlab
