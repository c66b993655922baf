// SPDX-License-Identifier: GPL-3.0-or-later
// Drives the studio through its own actions for the end-to-end test (`mmlab-studio --open FILE
// --e2e-report REPORT`): opens the experiment file in the new-experiment dialog, clicks Launch,
// waits for every queued run to end, plots their loss curves and writes a JSON report of what the
// chart draws (plus a screenshot), then quits with 0 when every run finished. The test compares
// the report with the database, so "what you see is what was stored" is checked on a real window.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QString>

namespace mmlab::ui {

class MainWindow;

class E2eDriver : public QObject {
  Q_OBJECT

 public:
  E2eDriver(MainWindow* window, QString experiment, QString report, QString screenshot,
            int timeout_s = 540);
  /// Starts once the event loop runs.
  void start();

 private:
  void click_launch();
  void poll();
  void finish(int code, const QString& error = {});

  MainWindow* window_;
  QString experiment_, report_, screenshot_;
  int timeout_s_;
  QElapsedTimer clock_;
  bool launched_ = false;
};

}  // namespace mmlab::ui
