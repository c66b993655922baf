// SPDX-License-Identifier: GPL-3.0-or-later
// The GPUs' memory for the status bar: `nvidia-smi` every five seconds while a CUDA device
// exists (nothing is started without one). Not a widget: it only says what it read.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>

class QTimer;

namespace mmlab::ui {

class GpuMonitor : public QObject {
  Q_OBJECT

 public:
  explicit GpuMonitor(QObject* parent = nullptr);
  /// The CUDA devices found (empty without a GPU).
  const QStringList& devices() const { return devices_; }
  /// "used/total GiB" per GPU, as read last ("" before the first answer).
  const QString& memory_text() const { return memory_; }

 Q_SIGNALS:
  void changed();

 private:
  void poll();

  QStringList devices_;
  QString memory_;
  QTimer* timer_ = nullptr;
};

}  // namespace mmlab::ui
