// SPDX-License-Identifier: GPL-3.0-or-later
// The Samples tab: `mmlab generate RUN --db DB --prompt TEXT --tokens N` for every selected run,
// each in its own child process, the texts side by side (no model runs in the GUI process).
#pragma once

#include <QString>
#include <QWidget>
#include <cstdint>
#include <functional>
#include <vector>

#include "ui/results_session.h"

class QHBoxLayout;
class QLineEdit;
class QSpinBox;

namespace mmlab::ui {

class SamplesPanel : public QWidget {
  Q_OBJECT

 public:
  /// `program`: the mmlab binary to run (the run manager's).
  SamplesPanel(ResultsSession& session, std::function<QString()> program,
               QWidget* parent = nullptr);
  /// The runs a click on Generate samples (the browser's selection).
  void set_runs(const std::vector<int64_t>& ids);
  void generate();

 private:
  ResultsSession& session_;
  std::function<QString()> program_;
  std::vector<int64_t> runs_;
  QLineEdit* prompt_ = nullptr;
  QSpinBox* sample_tokens_ = nullptr;
  QHBoxLayout* samples_row_ = nullptr;
};

}  // namespace mmlab::ui
