// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/remote_watch.h"

#include <QTimer>
#include <map>
#include <set>

#include "core/remote/ssh_runs.h"
#include "ui/results_session.h"
#include "ui/run_manager.h"
#include "ui/run_table_model.h"

namespace mmlab::ui {

namespace {

// The launches of the session's database; an unreadable list is no launches (`mmlab remote`
// names the damaged file when asked).
remote::LaunchBook book_of(const ResultsSession& session) {
  try {
    return remote::LaunchBook::load(session.path().toStdString());
  } catch (const std::exception&) {
    return {};
  }
}

std::vector<remote::Launch> launches_of(const ResultsSession& session) {
  return book_of(session).launches();
}

}  // namespace

RemoteWatch::RemoteWatch(const ResultsSession& session, const RunManager& manager,
                         RunTableModel& model, QObject* parent)
    : QObject(parent), session_(session), manager_(manager), model_(model) {
  timer_ = new QTimer(this);
  timer_->setInterval(20000);
  connect(timer_, &QTimer::timeout, this, &RemoteWatch::sync_now);
  timer_->start();
}

void RemoteWatch::update_unreachable() {
  book_unreachable_ = book_of(session_).unreachable_runs();
  apply_unreachable();
}

void RemoteWatch::apply_unreachable() {
  std::map<int64_t, QString> away;
  for (const store::RunRow& r : session_.runs())
    if (const auto it = book_unreachable_.find(r.uuid); it != book_unreachable_.end())
      away[r.id] = QString::fromStdString(it->second);
  // A host queue waiting for its host: every run queued there waits for the same answer.
  std::map<QString, QString> waiting;  // host queue → why
  for (const RunJob& j : manager_.jobs())
    if (j.state == RunState::kQueued && j.host_waits > 0 && RunManager::is_host_queue(j.device))
      waiting.emplace(j.device, j.message);
  for (const RunJob& j : manager_.jobs())
    if (j.state == RunState::kQueued && j.run_id >= 0)
      if (const auto it = waiting.find(j.device); it != waiting.end()) away[j.run_id] = it->second;
  model_.set_unreachable(std::move(away));
}

QStringList RemoteWatch::tags_to_sync() const {
  std::set<int64_t> followed;
  std::set<QString> busy_hosts;
  for (const RunJob& j : manager_.jobs()) {
    if (!is_active(j.state) || !RunManager::is_host_queue(j.device)) continue;
    followed.insert(j.run_id);
    busy_hosts.insert(j.device.mid(5));
  }
  std::map<std::string, int64_t> by_uuid;
  for (const store::RunRow& r : session_.runs()) by_uuid[r.uuid] = r.id;
  QStringList tags;
  for (const remote::Launch& l : launches_of(session_)) {
    if (l.ended) continue;
    const auto it = by_uuid.find(l.uuid);
    // Not synced yet: a follower on its host is most likely the one starting it.
    if (it == by_uuid.end()) {
      if (!busy_hosts.count(QString::fromStdString(l.host))) tags << QString::fromStdString(l.tag);
      continue;
    }
    if (!followed.count(it->second)) tags << QString::fromStdString(l.tag);
  }
  return tags;
}

void RemoteWatch::sync_now() {
  if (sync_ || !session_.is_open()) return;
  const QStringList tags = tags_to_sync();
  if (tags.isEmpty()) return;
  sync_ = new QProcess(this);
  connect(sync_, &QProcess::finished, this, [this] {
    sync_->deleteLater();
    Q_EMIT synced();
  });
  connect(sync_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) sync_->deleteLater();
  });
  sync_->start(manager_.program(), QStringList{QStringLiteral("remote"), QStringLiteral("--db"),
                                               session_.path(), QStringLiteral("sync")} +
                                       tags);
}

}  // namespace mmlab::ui
