// SPDX-License-Identifier: GPL-3.0-or-later
// The Compare tab: the selected runs' smoothed loss overlaid, their config diff (only the
// differences, or all), and the paper's speedup of each against a baseline the user picks (by
// default the first selected run), with core's definition (core/results/speedup.h), so its
// numbers are `mmlab report`'s.
#pragma once

#include <QWidget>
#include <cstdint>
#include <vector>

#include "ui/curve_data.h"
#include "ui/curve_plot.h"
#include "ui/results_session.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QTableWidget;

namespace mmlab::ui {

class ComparePanel : public QWidget {
  Q_OBJECT

 public:
  ComparePanel(ResultsSession& session, CurveSet& curves, QWidget* parent = nullptr);
  /// Compares these runs (the browser's selection).
  void set_runs(const std::vector<int64_t>& ids);
  /// Shows the same runs again (their curves arrived, their rows changed).
  void refresh();
  CurvePlot& plot() { return *plot_; }

 private:
  ResultsSession& session_;
  CurveSet& curves_;
  std::vector<int64_t> runs_;
  CurvePlot* plot_ = nullptr;
  QLabel* hint_ = nullptr;  // what to do while fewer than two runs are selected
  QTableWidget* diff_table_ = nullptr;
  QCheckBox* only_diff_ = nullptr;
  QTableWidget* speedup_table_ = nullptr;
  QComboBox* baseline_ = nullptr;  // one of the selected runs
  int64_t baseline_run_ = -1;      // the user's choice; -1 or unselected: the first selected run
};

}  // namespace mmlab::ui
