// SPDX-License-Identifier: GPL-3.0-or-later
// Keeps the studio's view of runs on remote hosts current when nothing follows them: a run
// whose host could not be reached is shown `unreachable` (not `lost`) — a started one by its
// launch's last contact, a queued one while its host's queue waits for the host to answer
// (RunJob::host_waits) — and every so often the
// starts that may still have rows to bring (and are not being followed by a run-manager job) are
// synced by one `mmlab remote sync TAG…` child, so a host that comes back catches up.
#pragma once

#include <QObject>
#include <QPointer>
#include <QProcess>
#include <QStringList>
#include <map>
#include <string>

class QTimer;

namespace mmlab::ui {

class ResultsSession;
class RunManager;
class RunTableModel;

class RemoteWatch : public QObject {
  Q_OBJECT

 public:
  RemoteWatch(const ResultsSession& session, const RunManager& manager, RunTableModel& model,
              QObject* parent = nullptr);

  /// Marks the unreachable runs in the model (after each re-read of the runs).
  void update_unreachable();
  /// The same from the launch book as last read, after a job of a host queue changed: the rows
  /// queued on a host whose queue waits for it are unreachable too.
  void apply_unreachable();
  /// The launch tags a sync would fetch now (not ended, not followed by an active job).
  QStringList tags_to_sync() const;
  /// Starts the sync child unless one is running or there is nothing to fetch.
  void sync_now();

 Q_SIGNALS:
  /// A sync child ended (the database may have new rows).
  void synced();

 private:
  const ResultsSession& session_;
  const RunManager& manager_;
  RunTableModel& model_;
  QTimer* timer_ = nullptr;
  QPointer<QProcess> sync_;
  std::map<std::string, std::string> book_unreachable_;  ///< run uuid → why, from the book
};

}  // namespace mmlab::ui
