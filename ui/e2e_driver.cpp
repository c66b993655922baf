// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/e2e_driver.h"

#include <QApplication>
#include <QFile>
#include <QPushButton>
#include <QTimer>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/results/metric_names.h"
#include "ui/experiment_dialog.h"
#include "ui/main_window.h"
#include "ui/qcp.h"

namespace mmlab::ui {

E2eDriver::E2eDriver(MainWindow* window, QString experiment, QString report, QString screenshot,
                     int timeout_s)
    : QObject(window),
      window_(window),
      experiment_(std::move(experiment)),
      report_(std::move(report)),
      screenshot_(std::move(screenshot)),
      timeout_s_(timeout_s) {}

void E2eDriver::start() {
  clock_.start();
  window_->set_quiet(true);
  window_->resize(1400, 850);
  // The dialog runs its own event loop (exec); a timer inside it presses Launch like a user.
  auto* clicker = new QTimer(this);
  connect(clicker, &QTimer::timeout, this, &E2eDriver::click_launch);
  clicker->start(200);
  QTimer::singleShot(0, this, [this, clicker] {
    window_->open_experiment_file(experiment_);
    clicker->stop();
    launched_ = true;
    if (window_->manager().jobs().empty()) {
      finish(3, QStringLiteral("nothing was launched: ") + window_->last_message());
      return;
    }
    auto* poller = new QTimer(this);
    connect(poller, &QTimer::timeout, this, &E2eDriver::poll);
    poller->start(250);
  });
}

void E2eDriver::click_launch() {
  auto* dlg = qobject_cast<ExperimentDialog*>(QApplication::activeModalWidget());
  if (!dlg) return;
  if (!dlg->is_valid()) {
    finish(3, QStringLiteral("the experiment is not valid: ") +
                  dlg->problems().join(QLatin1Char(' ')));
    return;
  }
  if (auto* b = dlg->findChild<QPushButton*>(QStringLiteral("launch"))) b->click();
}

void E2eDriver::poll() {
  if (clock_.elapsed() > qint64(timeout_s_) * 1000) {
    finish(2, QStringLiteral("timed out waiting for the runs"));
    return;
  }
  for (const RunJob& j : window_->manager().jobs())
    if (!is_done(j.state)) return;
  finish(0);
}

void E2eDriver::finish(int code, const QString& error) {
  using nlohmann::json;
  json report = {{"error", error.toStdString()}, {"runs", json::array()}};
  std::vector<int64_t> ids;  // sorted, as selected_runs() returns them
  bool all_finished = code == 0;
  window_->session().refresh();
  for (const RunJob& j : window_->manager().jobs()) {
    all_finished &= j.state == RunState::kFinished;
    if (j.run_id >= 0) ids.push_back(j.run_id);
  }
  std::sort(ids.begin(), ids.end());
  // Show the launched runs' raw loss so the drawn points are the stored ones.
  window_->select_runs(ids);
  // Runs a fake trainer streamed but never stored have no table row to select: plot them anyway.
  if (window_->selected_runs() != ids) window_->plot().set_runs(ids);
  window_->plot().set_metric(QString::fromLatin1(metric::kLoss));
  window_->plot().set_alpha(1.0);
  window_->plot().set_x_axis(XAxis::kStep);
  window_->plot().fit_all();
  for (const RunJob& j : window_->manager().jobs()) {
    json drawn = json::array();
    for (const auto& [x, y] : window_->plot().drawn(j.run_id)) drawn.push_back({x, y});
    report["runs"].push_back({{"name", j.name.toStdString()},
                              {"run_id", j.run_id},
                              {"state", to_string(j.state).toStdString()},
                              {"exit_code", j.exit_code},
                              {"message", j.message.toStdString()},
                              {"drawn", drawn}});
  }
  report["plotted"] = window_->plot().runs();
  // Draw now: the chart's own replots are queued, and the screenshot must show this state.
  window_->plot().plot()->replot(QCustomPlot::rpImmediateRefresh);
  if (!screenshot_.isEmpty()) window_->grab().save(screenshot_);
  QFile f(report_);
  if (f.open(QIODevice::WriteOnly | QIODevice::Truncate))
    f.write(QByteArray::fromStdString(report.dump(1)));
  f.close();
  QApplication::exit(code != 0 ? code : (all_finished ? 0 : 1));
}

}  // namespace mmlab::ui
