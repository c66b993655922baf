// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/queue_panel.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>

#include "ui/run_table_model.h"

namespace mmlab::ui {

QueuePanel::QueuePanel(RunManager& manager, ResultsSession& session, QWidget* parent)
    : QWidget(parent), manager_(manager), session_(session) {
  auto* v = new QVBoxLayout(this);
  hint_ = new QLabel(
      tr("Nothing queued. Launch an experiment with File ▸ New experiment (Ctrl+N) or Run ▸ "
         "Launch quick comparison; runs started elsewhere show up in the browser."),
      this);
  hint_->setObjectName(QStringLiteral("queueHint"));
  hint_->setWordWrap(true);
  v->addWidget(hint_);
  table_ = new QTableWidget(0, 6, this);
  table_->setObjectName(QStringLiteral("queueTable"));
  table_->setHorizontalHeaderLabels(
      {tr("Run"), tr("Device"), tr("State"), tr("Progress"), tr("ETA"), tr("Message")});
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->verticalHeader()->hide();
  v->addWidget(table_, 1);
  auto* buttons = new QHBoxLayout;
  auto add = [&](const QString& text, auto fn) {
    auto* b = new QPushButton(text, this);
    buttons->addWidget(b);
    connect(b, &QPushButton::clicked, this, [this, fn] {
      for (int key : selected_jobs()) fn(key);
      refresh();
    });
  };
  add(tr("Stop"), [this](int k) { manager_.stop(k); });
  add(tr("Resume"), [this](int k) { manager_.resume(k); });
  add(tr("Retry"), [this](int k) { manager_.retry(k); });
  add(tr("Remove"), [this](int k) {
    if (const RunJob* j = manager_.job(k); j && j->state == RunState::kQueued && j->run_id >= 0)
      session_.cancel_queued_run(j->run_id, tr("Taken off the queue before it started."));
    manager_.remove(k);
  });
  add(tr("Move up"), [this](int k) { manager_.move(k, -1); });
  add(tr("Move down"), [this](int k) { manager_.move(k, +1); });
  buttons->addStretch(1);
  v->addLayout(buttons);
  connect(&manager_, &RunManager::jobAdded, this, &QueuePanel::refresh);
  connect(&manager_, &RunManager::jobRemoved, this, &QueuePanel::refresh);
  connect(&manager_, &RunManager::jobChanged, this, &QueuePanel::refresh);
}

std::vector<int> QueuePanel::selected_jobs() const {
  std::vector<int> keys;
  for (const QModelIndex& i : table_->selectionModel()->selectedRows())
    keys.push_back(table_->item(i.row(), 0)->data(Qt::UserRole).toInt());
  return keys;
}

void QueuePanel::refresh() {
  const auto keep = selected_jobs();
  const auto& jobs = manager_.jobs();
  hint_->setVisible(jobs.empty());
  table_->setRowCount(int(jobs.size()));
  for (size_t i = 0; i < jobs.size(); ++i) {
    const RunJob& j = jobs[i];
    auto* name = new QTableWidgetItem(
        j.run_id >= 0 ? QStringLiteral("%1 #%2").arg(j.name).arg(j.run_id) : j.name);
    name->setData(Qt::UserRole, j.key);
    table_->setItem(int(i), 0, name);
    table_->setItem(int(i), 1, new QTableWidgetItem(j.device));
    table_->setItem(int(i), 2, new QTableWidgetItem(to_string(j.state)));
    auto* bar = qobject_cast<QProgressBar*>(table_->cellWidget(int(i), 3));
    if (!bar) {
      bar = new QProgressBar(table_);
      table_->setCellWidget(int(i), 3, bar);
    }
    bar->setRange(0, 1000);
    bar->setValue(j.progress() < 0 ? 0 : int(j.progress() * 1000));
    bar->setFormat(j.total_steps > 0 ? QStringLiteral("%1 / %2").arg(j.step).arg(j.total_steps)
                                     : QString());
    const double eta = j.eta_seconds();
    table_->setItem(
        int(i), 4,
        new QTableWidgetItem(is_active(j.state) && eta >= 0 ? RunTableModel::human_duration(eta)
                                                            : QString()));
    table_->setItem(int(i), 5, new QTableWidgetItem(j.message.isEmpty() ? j.note : j.message));
    if (std::find(keep.begin(), keep.end(), j.key) != keep.end()) table_->selectRow(int(i));
  }
}

}  // namespace mmlab::ui
