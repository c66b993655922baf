// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's run manager: one `mmlab train … --progress=jsonl` child process per run, queued per
// device (each device — the CPU, every CUDA device, every remote host — runs up to
// max_per_device() at once, one by default, like `mmlab train --parallel N`). No training happens
// in the GUI process; a run's state comes from what the child says (status events) and how it ends
// (exit code, or the signal that killed it), never from the mere absence of news.
//
//   queued → starting → running → stopping → finished | stopped | failed | diverged
//
// Stop is graceful: SIGTERM (the trainer finishes the step, checkpoints, exits 0 as `stopped`),
// then SIGKILL when it has not exited after stop_timeout.
//
// Remote jobs (queue "host:NAME") are `mmlab remote … --follow` children. One whose host could
// not be reached before anything started there (exit kExitHostUnreachable) is queued again and
// its host's queue waits, longer after each such try (host_retry_delay, doubling to 5 min).
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "ui/progress_parser.h"

namespace mmlab::ui {

enum class RunState {
  kQueued,
  kStarting,
  kRunning,
  kStopping,
  kFinished,
  kStopped,
  kFailed,
  kDiverged
};

QString to_string(RunState state);
/// A child process exists (starting, running, stopping).
bool is_active(RunState state);
/// The job has ended (finished, stopped, failed, diverged).
bool is_done(RunState state);

/// How a child ended, decided from its exit code (docs/progress-protocol.md), whether a signal
/// killed it, whether the user asked it to stop, and the last status event it printed.
RunState final_state(int exit_code, bool crashed, bool stop_requested,
                     std::optional<RunStatus> last_status);

/// "cuda" → "cuda:0", "" → "cpu": the queue key of a device string.
QString device_queue(const QString& device);

struct RunJob {
  int key = 0;       ///< the manager's id (stable while the studio runs)
  QString name;      ///< run name
  QString device;    ///< queue: "cpu", "cuda:0", …
  QStringList args;  ///< arguments of the next start
  QString db;        ///< database path (for resume arguments)
  /// Processes of a data-parallel run: more than 1 starts `mmlab launch --nproc N -- ARGS`.
  /// Such a run waits in its device's queue like any other; it uses GPUs 0..N-1.
  int ranks = 1;
  RunState state = RunState::kQueued;
  int64_t run_id = -1;  ///< the database id, once the child has said it
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t tokens = 0;
  double wall = 0;
  std::optional<RunStatus> last_status;  ///< last `status` event's status
  QString message;                       ///< why it failed/stopped, one sentence
  QString note;         ///< while starting: what the trainer is doing (data preparation, …)
  QString stderr_tail;  ///< last few KB of the child's stderr
  int exit_code = -1;
  bool stop_requested = false;
  int attempts = 0;
  int host_waits = 0;  ///< tries in a row that found its host unreachable
  qint64 pid = 0;
  int64_t malformed_lines = 0;

  /// Fraction done (0..1), or -1 when the total is not known yet.
  double progress() const;
  /// Seconds left at the rate seen so far, or -1.
  double eta_seconds() const;
};

class RunManager : public QObject {
  Q_OBJECT

 public:
  /// `program`: the mmlab binary (see default_program()).
  explicit RunManager(QString program, QObject* parent = nullptr);
  ~RunManager() override;

  /// $MMLAB_BIN, else `mmlab` next to the running executable.
  static QString default_program();

  const QString& program() const { return program_; }
  void set_program(const QString& program) { program_ = program; }
  /// Milliseconds between SIGTERM and SIGKILL.
  void set_stop_timeout(int ms) { stop_timeout_ms_ = ms; }
  /// Pauses/resumes starting queued jobs (running ones are unaffected).
  void set_paused(bool paused);
  /// How many jobs of one device queue run at once (at least 1); raising it starts queued jobs.
  void set_max_per_device(int n);
  int max_per_device() const { return max_per_device_; }
  /// Milliseconds a remote host's queue waits after its host could not be reached (first time).
  void set_host_retry_delay(int ms) { host_retry_ms_ = ms; }
  /// Every queued job of `device` starts at once (a Slurm cluster queues them itself).
  void set_concurrent(const QString& device) { concurrent_ << device_queue(device); }
  /// The device queue of a remote host: "host:NAME".
  static QString host_queue(const QString& host) { return QStringLiteral("host:") + host; }
  static bool is_host_queue(const QString& device) {
    return device.startsWith(QLatin1String("host:"));
  }

  /// Queues `mmlab train EXPERIMENT --run NAME --db DB --progress=jsonl` on `device`; `run_id`:
  /// the run's queued row, when the launch wrote one.
  int enqueue_train(const QString& experiment_path, const QString& run_name, const QString& db,
                    const QString& device, int64_t run_id = -1, int ranks = 1);
  /// Queues `mmlab train --resume RUN_ID --db DB --progress=jsonl`.
  int enqueue_resume(int64_t run_id, const QString& name, const QString& db, const QString& device,
                     int ranks = 1);
  /// Queues `mmlab remote --db DB launch HOST EXPERIMENT --run NAME --uuid UUID --follow` on
  /// the host's queue: the host's trainer takes the run's row queued here (`run_id`, `uuid`), so
  /// the synced rows land on it; the child streams the host's events like a local trainer and
  /// turns our SIGTERM into a stop on the host.
  int enqueue_remote_launch(const QString& host, const QString& experiment_path,
                            const QString& run_name, const QString& db, int64_t run_id,
                            const QString& uuid);
  /// Queues `mmlab remote --db DB resume RUN --follow` on the host's queue (RUN: the run's uuid,
  /// or its id in DB).
  int enqueue_remote_resume(const QString& host, const QString& run, const QString& name,
                            const QString& db, int64_t run_id);
  /// The child's arguments: `job.args`, through `mmlab launch --nproc N --` when it has ranks.
  static QStringList child_arguments(const RunJob& job);
  /// Queues an arbitrary argument list (tests, future commands); `run_id`: the run's row.
  int enqueue(const QString& name, const QString& device, const QStringList& args,
              const QString& db = {}, int64_t run_id = -1, int ranks = 1);

  /// Stops a job: a queued job ends as stopped at once; an active one gets SIGTERM, then
  /// SIGKILL after the timeout. Returns false when there is nothing to stop.
  bool stop(int key);
  void stop_all();
  /// Forgets a job that is queued or done (never one with a live process).
  bool remove(int key);
  /// Queues a done job again with the same arguments (a failed start, a bad config fixed since).
  bool retry(int key);
  /// Queues a done job that has a run id to continue from its last checkpoint (--resume).
  bool resume(int key);
  /// Moves a queued job `delta` places among the queued jobs (negative: earlier).
  bool move(int key, int delta);

  const std::vector<RunJob>& jobs() const { return jobs_; }
  const RunJob* job(int key) const;
  int active_count() const;

  /// On quit with "leave them running": forget the children without killing them (their SIGPIPE
  /// is ignored, so they outlive the pipe and keep writing to the database).
  void detach_all();

 Q_SIGNALS:
  void jobAdded(int key);
  void jobChanged(int key);
  void jobRemoved(int key);
  /// Events parsed from one read of the child's stdout (a small batch, in order).
  void eventsReceived(int key, const std::vector<mmlab::ProgressEvent>& events);

 private:
  RunJob* find(int key);
  static QStringList remote_resume_arguments(const QString& db, const QString& run);
  void schedule();
  void launch(RunJob& job);
  void on_stdout(int key);
  void on_stderr(int key);
  void on_finished(int key, int exit_code, QProcess::ExitStatus status);
  void on_error(int key, QProcess::ProcessError error);
  void apply(RunJob& job, const std::vector<ProgressEvent>& events);
  void finish_job(RunJob& job, RunState state);

  /// Puts a job whose host was unreachable back in the queue, its host's queue held a while.
  void wait_for_host(RunJob& job);
  /// Runs schedule() once the hold on `device` (held_until_) is over.
  void schedule_when_released(const QString& device);

  QString program_;
  int stop_timeout_ms_ = 30000;
  int host_retry_ms_ = 5000;
  QStringList concurrent_;
  std::map<QString, qint64> held_until_;  ///< device → ms since the epoch (hosts that were away)
  bool paused_ = false;
  int max_per_device_ = 1;
  int next_key_ = 1;
  std::vector<RunJob> jobs_;  // queue order
  struct Child {
    QProcess* process = nullptr;
    ProgressParser parser;
    QElapsedTimer clock;
  };
  std::map<int, std::unique_ptr<Child>> children_;
};

}  // namespace mmlab::ui
