// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/run_manager.h"

#include <signal.h>

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QTimer>
#include <algorithm>
#include <set>

#include "core/util/error.h"

namespace mmlab::ui {

QString to_string(RunState state) {
  switch (state) {
    case RunState::kQueued:
      return QStringLiteral("queued");
    case RunState::kStarting:
      return QStringLiteral("starting");
    case RunState::kRunning:
      return QStringLiteral("running");
    case RunState::kStopping:
      return QStringLiteral("stopping");
    case RunState::kFinished:
      return QStringLiteral("finished");
    case RunState::kStopped:
      return QStringLiteral("stopped");
    case RunState::kFailed:
      return QStringLiteral("failed");
    case RunState::kDiverged:
      return QStringLiteral("diverged");
  }
  return {};
}

bool is_active(RunState s) {
  return s == RunState::kStarting || s == RunState::kRunning || s == RunState::kStopping;
}

bool is_done(RunState s) {
  return s == RunState::kFinished || s == RunState::kStopped || s == RunState::kFailed ||
         s == RunState::kDiverged;
}

RunState final_state(int exit_code, bool crashed, bool stop_requested,
                     std::optional<RunStatus> last_status) {
  if (crashed) return stop_requested ? RunState::kStopped : RunState::kFailed;
  // A clean exit is "finished or stopped"; the status event (or our own request) tells which.
  const bool stopped = stop_requested || last_status == RunStatus::kStopped;
  switch (status_of_exit(exit_code, stopped)) {
    case RunStatus::kFinished:
      return RunState::kFinished;
    case RunStatus::kStopped:
      return RunState::kStopped;
    case RunStatus::kDiverged:
      return RunState::kDiverged;
    default:
      return RunState::kFailed;
  }
}

QString device_queue(const QString& device) {
  QString d = device.trimmed().toLower();
  if (d.isEmpty()) return QStringLiteral("cpu");
  if (d == QLatin1String("cuda")) return QStringLiteral("cuda:0");
  return d;
}

double RunJob::progress() const {
  if (total_steps <= 0) return -1;
  return std::clamp(double(step) / double(total_steps), 0.0, 1.0);
}

double RunJob::eta_seconds() const {
  if (total_steps <= 0 || step <= 0 || wall <= 0) return -1;
  return wall / double(step) * double(total_steps - step);
}

RunManager::RunManager(QString program, QObject* parent)
    : QObject(parent), program_(std::move(program)) {}

RunManager::~RunManager() {
  // Children still alive when the manager dies are killed by their QProcess; the caller decides
  // beforehand (stop_all or detach_all) what should happen to them.
  for (auto& [key, child] : children_) {
    if (child->process) {
      child->process->disconnect(this);
      child->process->kill();
      child->process->waitForFinished(2000);
      delete child->process;
    }
  }
}

QString RunManager::default_program() {
  const QString env = qEnvironmentVariable("MMLAB_BIN");
  if (!env.isEmpty()) return env;
  return QDir(QCoreApplication::applicationDirPath()).filePath(QStringLiteral("mmlab"));
}

void RunManager::set_paused(bool paused) {
  paused_ = paused;
  if (!paused_) schedule();
}

void RunManager::set_max_per_device(int n) {
  max_per_device_ = std::max(1, n);
  schedule();
}

int RunManager::enqueue_train(const QString& experiment_path, const QString& run_name,
                              const QString& db, const QString& device, int64_t run_id, int ranks) {
  return enqueue(run_name, device,
                 {QStringLiteral("train"), experiment_path, QStringLiteral("--run"), run_name,
                  QStringLiteral("--db"), db, QStringLiteral("--progress=jsonl")},
                 db, run_id, ranks);
}

int RunManager::enqueue_resume(int64_t run_id, const QString& name, const QString& db,
                               const QString& device, int ranks) {
  return enqueue(name, device,
                 {QStringLiteral("train"), QStringLiteral("--resume"), QString::number(run_id),
                  QStringLiteral("--db"), db, QStringLiteral("--progress=jsonl")},
                 db, run_id, ranks);
}

int RunManager::enqueue_remote_launch(const QString& host, const QString& experiment_path,
                                      const QString& run_name, const QString& db, int64_t run_id,
                                      const QString& uuid) {
  return enqueue(run_name, host_queue(host),
                 {QStringLiteral("remote"), QStringLiteral("--db"), db, QStringLiteral("launch"),
                  host, experiment_path, QStringLiteral("--run"), run_name,
                  QStringLiteral("--uuid"), uuid, QStringLiteral("--follow")},
                 db, run_id);
}

int RunManager::enqueue_remote_resume(const QString& host, const QString& run, const QString& name,
                                      const QString& db, int64_t run_id) {
  return enqueue(name, host_queue(host), remote_resume_arguments(db, run), db, run_id);
}

QStringList RunManager::remote_resume_arguments(const QString& db, const QString& run) {
  return {QStringLiteral("remote"),  QStringLiteral("--db"), db, QStringLiteral("resume"), run,
          QStringLiteral("--follow")};
}

QStringList RunManager::child_arguments(const RunJob& job) {
  if (job.ranks <= 1) return job.args;
  return QStringList{QStringLiteral("launch"), QStringLiteral("--nproc"),
                     QString::number(job.ranks), QStringLiteral("--")} +
         job.args;
}

int RunManager::enqueue(const QString& name, const QString& device, const QStringList& args,
                        const QString& db, int64_t run_id, int ranks) {
  RunJob job;
  job.key = next_key_++;
  job.run_id = run_id;  // known before a start that may fail at once
  job.name = name;
  job.device = device_queue(device);
  job.args = args;
  job.db = db;
  job.ranks = std::max(1, ranks);
  jobs_.push_back(job);
  Q_EMIT jobAdded(job.key);
  schedule();
  return job.key;
}

RunJob* RunManager::find(int key) {
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const RunJob& j) { return j.key == key; });
  return it == jobs_.end() ? nullptr : &*it;
}

const RunJob* RunManager::job(int key) const {
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const RunJob& j) { return j.key == key; });
  return it == jobs_.end() ? nullptr : &*it;
}

int RunManager::active_count() const {
  return int(std::count_if(jobs_.begin(), jobs_.end(),
                           [](const RunJob& j) { return is_active(j.state); }));
}

void RunManager::schedule() {
  if (paused_) return;
  // Active jobs per device; queued jobs start in queue order while their device has room.
  std::map<QString, int> busy;
  for (const RunJob& j : jobs_)
    if (is_active(j.state)) ++busy[j.device];
  // A held host (it could not be reached) starts nothing until its hold is over.
  const qint64 now = QDateTime::currentMSecsSinceEpoch();
  std::set<QString> held;
  for (const auto& [device, until] : held_until_)
    if (until > now) held.insert(device);
  std::vector<int> to_start;
  for (const RunJob& j : jobs_) {
    // A concurrent queue (a Slurm cluster, which queues its jobs itself) has no limit.
    const bool room = concurrent_.contains(j.device) || busy[j.device] < max_per_device_;
    if (j.state == RunState::kQueued && !held.count(j.device) && room) {
      ++busy[j.device];
      to_start.push_back(j.key);
    }
  }
  // launch() may fail synchronously and reschedule; look each job up again by key.
  for (int key : to_start)
    if (RunJob* j = find(key); j && j->state == RunState::kQueued) launch(*j);
}

void RunManager::launch(RunJob& job) {
  auto child = std::make_unique<Child>();
  auto* p = new QProcess(this);
  child->process = p;
  child->clock.start();
  const int key = job.key;
  job.state = RunState::kStarting;
  job.stop_requested = false;
  job.message.clear();
  job.stderr_tail.clear();
  job.note.clear();
  job.exit_code = -1;
  job.last_status.reset();
  ++job.attempts;
  children_[key] = std::move(child);
  connect(p, &QProcess::readyReadStandardOutput, this, [this, key] { on_stdout(key); });
  connect(p, &QProcess::readyReadStandardError, this, [this, key] { on_stderr(key); });
  connect(p, &QProcess::finished, this,
          [this, key](int code, QProcess::ExitStatus st) { on_finished(key, code, st); });
  connect(p, &QProcess::errorOccurred, this,
          [this, key](QProcess::ProcessError e) { on_error(key, e); });
  // The child ignores SIGPIPE so that, if the studio quits leaving it running, losing the read
  // end of its stdout does not kill it (it keeps writing its rows to the database).
  p->setChildProcessModifier([] { ::signal(SIGPIPE, SIG_IGN); });
  Q_EMIT jobChanged(key);
  p->start(program_, child_arguments(job), QIODevice::ReadOnly);
  if (RunJob* j = find(key); j && p->state() != QProcess::NotRunning) j->pid = p->processId();
}

void RunManager::on_stdout(int key) {
  auto it = children_.find(key);
  RunJob* job = find(key);
  if (it == children_.end() || !job) return;
  const QByteArray bytes = it->second->process->readAllStandardOutput();
  std::vector<ProgressEvent> events =
      it->second->parser.feed(std::string_view(bytes.constData(), size_t(bytes.size())));
  job->malformed_lines = it->second->parser.malformed();
  if (events.empty()) return;
  apply(*job, events);
  Q_EMIT eventsReceived(key, events);
  Q_EMIT jobChanged(key);
}

void RunManager::on_stderr(int key) {
  auto it = children_.find(key);
  RunJob* job = find(key);
  if (it == children_.end() || !job) return;
  job->stderr_tail += QString::fromUtf8(it->second->process->readAllStandardError());
  constexpr int kKeep = 4096;  // enough for a failure's last lines; a chatty child stays bounded
  if (job->stderr_tail.size() > kKeep) job->stderr_tail = job->stderr_tail.right(kKeep);
}

void RunManager::apply(RunJob& job, const std::vector<ProgressEvent>& events) {
  for (const ProgressEvent& e : events) {
    if (e.run_id > 0) job.run_id = e.run_id;  // 0: the run has no row yet (data preparation)
    if (e.wall > 0) job.wall = e.wall;
    if (e.total_steps > 0) job.total_steps = e.total_steps;
    if (e.step >= 0 && e.kind != EventKind::kCheckpoint) job.step = e.step;
    if (e.tokens >= 0) job.tokens = e.tokens;
    if (e.kind == EventKind::kStatus) {
      job.last_status = e.status;
      if (!e.message.empty()) job.message = QString::fromStdString(e.message);
      if (e.status == RunStatus::kRunning && job.state == RunState::kStarting) {
        job.state = RunState::kRunning;
        job.note.clear();  // what start-up was doing ("Preparing data …") is over
      }
    } else if (e.kind == EventKind::kStep && job.state == RunState::kStarting) {
      job.state = RunState::kRunning;
      job.note.clear();
    } else if (e.kind == EventKind::kLog && e.level == "error" && job.message.isEmpty()) {
      job.message = QString::fromStdString(e.message);
    } else if (e.kind == EventKind::kLog && job.state == RunState::kStarting) {
      // Before the first step the log says what takes the time (tokenizing a corpus, …).
      job.note = QString::fromStdString(e.message);
      if (e.fraction >= 0) job.note += QStringLiteral(" %1%").arg(int(e.fraction * 100));
    }
  }
}

void RunManager::on_finished(int key, int exit_code, QProcess::ExitStatus status) {
  auto it = children_.find(key);
  RunJob* job = find(key);
  if (it == children_.end() || !job) return;
  QProcess* p = it->second->process;
  // Drain what is left in the pipes (the final status event often arrives with the exit).
  on_stdout(key);
  on_stderr(key);
  std::vector<ProgressEvent> tail = it->second->parser.finish();
  if (!tail.empty()) {
    apply(*job, tail);
    Q_EMIT eventsReceived(key, tail);
  }
  const bool crashed = status == QProcess::CrashExit;
  job->exit_code = crashed ? -1 : exit_code;
  if (!crashed && exit_code == kExitHostUnreachable && !job->stop_requested &&
      is_host_queue(job->device)) {
    p->deleteLater();
    children_.erase(it);
    wait_for_host(*job);
    return;
  }
  job->host_waits = 0;
  const RunState state = final_state(exit_code, crashed, job->stop_requested, job->last_status);
  if (crashed && job->stop_requested) {
    job->message = tr("Killed: it did not stop within %1 s of SIGTERM; resume continues from the "
                      "last checkpoint.")
                       .arg(stop_timeout_ms_ / 1000.0);
  } else if (crashed) {
    job->message = tr("The trainer crashed (%1).").arg(p->errorString());
  } else if (state == RunState::kFailed && job->message.isEmpty()) {
    // No status message: the last non-empty stderr lines say why (usage errors, bad input).
    QStringList lines = job->stderr_tail.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    while (lines.size() > 3) lines.removeFirst();
    job->message = lines.isEmpty() ? tr("The trainer exited with code %1.").arg(exit_code)
                                   : lines.join(QLatin1Char(' ')).trimmed();
  }
  p->deleteLater();
  children_.erase(it);
  finish_job(*job, state);
}

void RunManager::on_error(int key, QProcess::ProcessError error) {
  if (error != QProcess::FailedToStart) return;  // the others end in finished()
  auto it = children_.find(key);
  RunJob* job = find(key);
  if (it == children_.end() || !job) return;
  job->message = tr("Could not start %1: %2. Build the `mmlab` target or set MMLAB_BIN.")
                     .arg(program_, it->second->process->errorString());
  it->second->process->deleteLater();
  children_.erase(it);
  finish_job(*job, RunState::kFailed);
}

void RunManager::schedule_when_released(const QString& device) {
  const qint64 left = held_until_[device] - QDateTime::currentMSecsSinceEpoch();
  if (left <= 0) {
    schedule();
    return;
  }
  // A timer may fire a little early (coarse timers by up to 5%): it looks again until the hold
  // is over, so a held queue is never left waiting for a timer that will not come.
  QTimer::singleShot(int(left), Qt::PreciseTimer, this,
                     [this, device] { schedule_when_released(device); });
}

void RunManager::wait_for_host(RunJob& job) {
  const int key = job.key;
  const qint64 delay =
      std::min<qint64>(qint64(host_retry_ms_) << std::min(job.host_waits, 16), 300000);
  ++job.host_waits;
  QStringList lines = job.stderr_tail.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
  QString why = lines.isEmpty() ? tr("The host could not be reached.") : lines.last().trimmed();
  if (why.startsWith(QLatin1String("mmlab: "))) why = why.mid(7);
  job.message = tr("%1 Trying again in %2 s.").arg(why).arg(delay / 1000.0);
  job.state = RunState::kQueued;
  job.pid = 0;
  job.note.clear();
  held_until_[job.device] = QDateTime::currentMSecsSinceEpoch() + delay;
  schedule_when_released(job.device);
  Q_EMIT jobChanged(key);
  schedule();
}

void RunManager::finish_job(RunJob& job, RunState state) {
  job.note.clear();
  job.state = state;
  job.pid = 0;
  const int key = job.key;
  Q_EMIT jobChanged(key);
  schedule();
}

bool RunManager::stop(int key) {
  RunJob* job = find(key);
  if (!job) return false;
  if (job->state == RunState::kQueued) {
    job->stop_requested = true;
    job->message = tr("Stopped before it started.");
    finish_job(*job, RunState::kStopped);
    return true;
  }
  if (!is_active(job->state)) return false;
  auto it = children_.find(key);
  if (it == children_.end()) return false;
  job->stop_requested = true;
  job->state = RunState::kStopping;
  QProcess* p = it->second->process;
  p->terminate();  // SIGTERM: the trainer checkpoints and exits 0
  QTimer::singleShot(stop_timeout_ms_, p, [p] {
    if (p->state() != QProcess::NotRunning) p->kill();
  });
  Q_EMIT jobChanged(key);
  return true;
}

void RunManager::stop_all() {
  std::vector<int> keys;
  for (const RunJob& j : jobs_)
    if (j.state == RunState::kQueued || is_active(j.state)) keys.push_back(j.key);
  // Queued ones first, so that stopping an active job does not start the next in line.
  std::stable_partition(keys.begin(), keys.end(),
                        [this](int k) { return find(k)->state == RunState::kQueued; });
  for (int k : keys) stop(k);
}

bool RunManager::remove(int key) {
  RunJob* job = find(key);
  if (!job || is_active(job->state)) return false;
  jobs_.erase(jobs_.begin() + (job - jobs_.data()));
  Q_EMIT jobRemoved(key);
  return true;
}

bool RunManager::retry(int key) {
  RunJob* job = find(key);
  if (!job || !is_done(job->state)) return false;
  job->state = RunState::kQueued;
  job->message.clear();
  Q_EMIT jobChanged(key);
  schedule();
  return true;
}

bool RunManager::resume(int key) {
  RunJob* job = find(key);
  if (!job || !is_done(job->state) || job->run_id < 0 || job->state == RunState::kFinished)
    return false;
  if (is_host_queue(job->device)) {
    // On the host it trained on, followed as it was launched (`mmlab remote resume` takes the
    // run's id here).
    job->args = remote_resume_arguments(job->db, QString::number(job->run_id));
    return retry(key);
  }
  job->args = {QStringLiteral("train"),
               QStringLiteral("--resume"),
               QString::number(job->run_id),
               QStringLiteral("--db"),
               job->db,
               QStringLiteral("--progress=jsonl")};
  return retry(key);
}

bool RunManager::move(int key, int delta) {
  RunJob* job = find(key);
  if (!job || job->state != RunState::kQueued || delta == 0) return false;
  // Positions of the queued jobs; the job swaps with its queued neighbour |delta| times.
  std::vector<size_t> queued;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (jobs_[i].state == RunState::kQueued) queued.push_back(i);
  size_t pos = std::find(queued.begin(), queued.end(), size_t(job - jobs_.data())) - queued.begin();
  const long target = std::clamp<long>(long(pos) + delta, 0, long(queued.size()) - 1);
  if (target == long(pos)) return false;
  while (long(pos) != target) {
    const size_t next = target > long(pos) ? pos + 1 : pos - 1;
    std::swap(jobs_[queued[pos]], jobs_[queued[next]]);
    pos = next;
  }
  Q_EMIT jobChanged(key);
  return true;
}

void RunManager::detach_all() {
  for (auto& [key, child] : children_) {
    child->process->disconnect(this);
    child->process->setParent(nullptr);
    // Deliberately not deleted: ~QProcess would kill the child the user chose to keep.
    child->process = nullptr;
  }
  children_.clear();
}

}  // namespace mmlab::ui
