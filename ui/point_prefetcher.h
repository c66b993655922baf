// SPDX-License-Identifier: GPL-3.0-or-later
// Reads stored curves on a worker thread (STYLE.md 14): the chart asks for (run, metric) pairs and
// gets the points back on the GUI thread when they are read, so selecting runs with 100k-point
// curves never freezes the window (one such curve takes ~40 ms to read). The worker has its own
// read-only connection; a newer request makes the worker drop what is left of an older one.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ui/curve_data.h"

namespace mmlab::ui {

class PrefetchWorker;

class PointPrefetcher : public QObject {
  Q_OBJECT

 public:
  explicit PointPrefetcher(QObject* parent = nullptr);
  ~PointPrefetcher() override;

  /// Queues reading `items` from `db`; supersedes every earlier request.
  void request(const QString& db, std::vector<std::pair<int64_t, std::string>> items);
  /// True while a request is being read.
  bool busy() const { return busy_; }

 Q_SIGNALS:
  /// One curve read (on the GUI thread). `points` is empty when the run or metric has none.
  void loaded(qint64 run_id, const QString& metric, std::shared_ptr<mmlab::ui::Series> points);
  /// The latest request is done (or failed: `error` says why).
  void done(const QString& error);

 private:
  QThread thread_;
  PrefetchWorker* worker_ = nullptr;
  std::shared_ptr<std::atomic<uint64_t>> generation_;
  bool busy_ = false;
};

}  // namespace mmlab::ui
