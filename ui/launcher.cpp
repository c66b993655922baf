// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/launcher.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <exception>
#include <optional>
#include <set>
#include <string>

#include "core/config/experiment.h"
#include "core/queue/experiment_queue.h"
#include "core/remote/ssh_runs.h"
#include "ui/results_session.h"
#include "ui/run_manager.h"

namespace mmlab::ui {

using nlohmann::json;

namespace {

// A stored config that cannot be read still resumes: on the CPU, where every run can train.
QString device_of(const store::RunRow& r) {
  try {
    return QString::fromStdString(
        json::parse(r.config_json).value("train", json::object()).value("device", "cpu"));
  } catch (const std::exception&) {
    return QStringLiteral("cpu");
  }
}

}  // namespace

Launcher::Launcher(ResultsSession& session, RunManager& manager, QObject* parent)
    : QObject(parent), session_(session), manager_(manager) {}

int Launcher::launch_experiment(const json& doc, QString* error, const QString& target, int ranks) {
  if (!session_.is_open()) {
    if (error) *error = tr("No database is open: open or create one first (File ▸ Open database).");
    return 0;
  }
  Experiment ex;
  try {
    ex = parse_experiment(doc, "the experiment");
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return 0;
  }
  const QString file = save_experiment_file(doc, QString::fromStdString(ex.name), error);
  if (file.isEmpty()) return 0;
  const bool remote = target != QLatin1String("local");
  // Every run's row first (queued): closing the studio or a crash never loses the runs that
  // have not started, and launching an experiment that is already there continues it.
  // Remote runs get their rows here too, recording the host (their data is the host's to check).
  queue::QueueOptions where;
  if (remote) where.host = target.toStdString();
  queue::LaunchPlan plan;
  if (!session_.queue_experiment(ex, ex.runs, &plan, error, where)) {
    QFile::remove(file);
    return 0;
  }
  int queued = 0;
  for (const queue::QueuedRun& q : plan.runs) {
    const QString name = QString::fromStdString(q.name);
    const QString device = QString::fromStdString(q.device);
    if (q.action == queue::RunAction::kSkip) continue;
    if (remote && q.action == queue::RunAction::kStart) {
      enqueue_remote_launch(target, file, q.run_id, name, QString::fromStdString(q.uuid));
    } else if (remote) {
      enqueue_remote_resume(target, q.run_id, name, QString::fromStdString(q.uuid));
    } else if (q.action == queue::RunAction::kStart) {
      manager_.enqueue_train(file, name, session_.path(), device, q.run_id, ranks);
    } else if (q.action == queue::RunAction::kResume) {
      // A run of the experiment that trained on a host continues there.
      const store::RunRow* row = session_.run(q.run_id);
      if (row && unreachable(*row)) continue;  // nothing to do until its host is back
      if (!row || !resume_on_its_host(*row))
        manager_.enqueue_resume(q.run_id, name, session_.path(), device, ranks);
    } else {
      manager_.enqueue_resume(q.run_id, name, session_.path(), device, ranks);
    }
    ++queued;
  }
  if (queued == 0) {
    if (error)
      *error = tr("Every run of %1 in this database has finished or is training already: give "
                  "the experiment a new name to train it again.")
                   .arg(QString::fromStdString(ex.name));
    return 0;
  }
  Q_EMIT message(
      plan.continuing ? QString::fromStdString(plan.summary(session_.path().toStdString()))
      : remote        ? tr("Queued %1 run(s) of %2 on %3.")
                     .arg(queued)
                     .arg(QString::fromStdString(ex.name), target)
               : tr("Queued %1 run(s) of %2.").arg(queued).arg(QString::fromStdString(ex.name)),
      8000);
  return queued;
}

QString Launcher::save_experiment_file(const json& doc, const QString& name, QString* error) {
  // The trainer reads the experiment from a file: keep it next to the database, so the runs can
  // be reproduced (and resumed) from exactly what was launched.
  const QDir dir(experiments_dir_for(session_.path()));
  if (!dir.mkpath(QStringLiteral("."))) {
    if (error) *error = tr("Could not create %1: check its permissions.").arg(dir.path());
    return {};
  }
  const QString stem = dir.filePath(QStringLiteral("%1-%2").arg(
      QString(name).replace(QLatin1Char('/'), QLatin1Char('_')),
      QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss-zzz"))));
  // Never an existing file: two launches of one experiment within a millisecond would share it,
  // and the second (or its removal when refused) would change what the first one's runs read.
  QString file = stem + QStringLiteral(".json");
  QFile f(file);
  for (int n = 2; !f.open(QIODevice::WriteOnly | QIODevice::NewOnly); ++n) {
    if (!f.exists() || n > 1000) {
      if (error) *error = tr("Could not write %1: %2.").arg(file, f.errorString());
      return {};
    }
    file = QStringLiteral("%1-%2.json").arg(stem).arg(n);
    f.setFileName(file);
  }
  if (f.write(QByteArray::fromStdString(doc.dump(2))) < 0 || !f.flush()) {
    if (error) *error = tr("Could not write %1: %2.").arg(file, f.errorString());
    f.close();
    QFile::remove(file);
    return {};
  }
  return file;
}

void Launcher::use_host_queue(const QString& host) {
  // An SSH host trains one run at a time; a Slurm cluster takes every job at once and queues
  // them itself.
  try {
    const auto hosts = remote::HostList::load(remote::default_hosts_path());
    if (hosts.get(host.toStdString()).kind == remote::HostKind::kSlurm)
      manager_.set_concurrent(RunManager::host_queue(host));
  } catch (const std::exception&) {
    // An unknown host or a damaged hosts file: its job says so when it starts.
  }
}

void Launcher::enqueue_remote_launch(const QString& host, const QString& file, int64_t run_id,
                                     const QString& name, const QString& uuid) {
  use_host_queue(host);
  manager_.enqueue_remote_launch(host, file, name, session_.path(), run_id, uuid);
}

void Launcher::enqueue_remote_resume(const QString& host, int64_t run_id, const QString& name,
                                     const QString& uuid) {
  use_host_queue(host);
  manager_.enqueue_remote_resume(host, uuid, name, session_.path(), run_id);
}

QString Launcher::remote_host_of(const store::RunRow& run) const {
  try {
    auto book = remote::LaunchBook::load(session_.path().toStdString());
    if (const remote::Launch* l = book.find(run.uuid)) return QString::fromStdString(l->host);
  } catch (const std::exception&) {
    // A damaged list of remote runs: treat the run as local (`mmlab remote` names the file).
  }
  return {};
}

bool Launcher::resume_on_its_host(const store::RunRow& r) {
  const QString host = remote_host_of(r);
  if (host.isEmpty()) return false;
  if (unreachable(r)) {
    // It may still be training there; what it is becomes known when its host answers again.
    Q_EMIT message(
        tr("%1: its host cannot be reached now; resume it once it is back.").arg(run_label(r)),
        8000);
    return true;
  }
  // A run that trained on a host resumes there, followed as it was launched.
  enqueue_remote_resume(host, r.id, QString::fromStdString(r.name), QString::fromStdString(r.uuid));
  return true;
}

int Launcher::resume_runs(const std::vector<int64_t>& ids) {
  int queued = 0;
  for (int64_t id : ids) {
    const store::RunRow* r = session_.run(id);
    if (!r || r->status == store::RunStatus::kFinished ||
        r->effective_status == store::RunStatus::kRunning)
      continue;
    if (resume_on_its_host(*r)) {
      queued += !unreachable(*r);
      continue;
    }
    manager_.enqueue_resume(id, QString::fromStdString(r->name), session_.path(), device_of(*r));
    ++queued;
  }
  return queued;
}

int Launcher::restore_queue() {
  std::set<int64_t> known;
  for (const RunJob& j : manager_.jobs())
    if (j.run_id >= 0) known.insert(j.run_id);
  int restored = 0;
  std::optional<remote::LaunchBook> book;
  for (const store::RunRow& r : session_.runs()) {
    if (r.status != store::RunStatus::kQueued || known.count(r.id)) continue;
    if (!r.host.empty()) {
      // Queued for a host (QueueOptions::host). One whose trainer was started there already
      // (its uuid is in the launch book) is not started again: its rows arrive by sync.
      try {
        if (!book) book = remote::LaunchBook::load(session_.path().toStdString());
      } catch (const std::exception& e) {
        Q_EMIT message(QString::fromStdString(e.what()), 15000);
        return restored;
      }
      if (book->find(r.uuid)) continue;
      const std::string spec = session_.experiment_spec(r.experiment);
      json doc;
      try {
        doc = json::parse(spec);
      } catch (const std::exception&) {
        continue;  // nothing to launch it from; the row stays queued for `mmlab remote launch`
      }
      QString err;
      const QString file = save_experiment_file(doc, QString::fromStdString(r.experiment), &err);
      if (file.isEmpty()) {
        Q_EMIT message(err, 15000);
        continue;
      }
      enqueue_remote_launch(QString::fromStdString(r.host), file, r.id,
                            QString::fromStdString(r.name), QString::fromStdString(r.uuid));
      ++restored;
      continue;
    }
    // `--resume` of a queued run starts it from its stored config (no experiment file needed).
    manager_.enqueue_resume(r.id, QString::fromStdString(r.name), session_.path(), device_of(r));
    ++restored;
  }
  if (restored > 0)
    Q_EMIT message(tr("Restored %n queued run(s) from the database.", nullptr, restored), 8000);
  return restored;
}

}  // namespace mmlab::ui
