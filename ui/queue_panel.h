// SPDX-License-Identifier: GPL-3.0-or-later
// The Queue tab: every job of the run manager with its device, state, progress bar, ETA and
// message, and the buttons that act on the selected jobs (stop, resume, retry, remove, reorder).
// Taking a queued run off the queue stores its row as stopped, so no later studio queues it again.
#pragma once

#include <QWidget>
#include <vector>

#include "ui/results_session.h"
#include "ui/run_manager.h"

class QLabel;
class QTableWidget;

namespace mmlab::ui {

class QueuePanel : public QWidget {
  Q_OBJECT

 public:
  QueuePanel(RunManager& manager, ResultsSession& session, QWidget* parent = nullptr);
  /// The manager's keys of the selected jobs.
  std::vector<int> selected_jobs() const;
  /// Shows the jobs as they are now (it follows the manager's signals on its own).
  void refresh();

 private:
  RunManager& manager_;
  ResultsSession& session_;
  QTableWidget* table_ = nullptr;
  QLabel* hint_ = nullptr;  // what to do while the queue is empty
};

}  // namespace mmlab::ui
