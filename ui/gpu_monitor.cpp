// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/gpu_monitor.h"

#include <QProcess>
#include <QTimer>

#include "ui/experiment_dialog.h"

namespace mmlab::ui {

GpuMonitor::GpuMonitor(QObject* parent) : QObject(parent), devices_(cuda_devices()) {
  if (devices_.isEmpty()) return;
  timer_ = new QTimer(this);
  timer_->setInterval(5000);
  connect(timer_, &QTimer::timeout, this, &GpuMonitor::poll);
  timer_->start();
  poll();
}

void GpuMonitor::poll() {
  auto* p = new QProcess(this);
  connect(p, &QProcess::finished, this, [this, p] {
    // "used, total" MiB per GPU, one line each.
    QStringList parts;
    for (const QString& line : QString::fromUtf8(p->readAllStandardOutput())
                                   .split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
      const QStringList f = line.split(QLatin1Char(','));
      if (f.size() == 2)
        parts << QStringLiteral("%1/%2 GiB")
                     .arg(f[0].trimmed().toDouble() / 1024, 0, 'f', 1)
                     .arg(f[1].trimmed().toDouble() / 1024, 0, 'f', 0);
    }
    memory_ = parts.join(QStringLiteral(", "));
    p->deleteLater();
    Q_EMIT changed();
  });
  connect(p, &QProcess::errorOccurred, p, &QObject::deleteLater);
  p->start(QStringLiteral("nvidia-smi"), {QStringLiteral("--query-gpu=memory.used,memory.total"),
                                          QStringLiteral("--format=csv,noheader,nounits")});
}

}  // namespace mmlab::ui
