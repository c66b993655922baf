// SPDX-License-Identifier: GPL-3.0-or-later
// What the studio does when it launches, resumes or re-queues runs, apart from any widget: it
// writes the experiment file beside the database, queues every run's row through the results
// session, and hands the run manager one job per run that has something to do (start, resume,
// or nothing for a finished one), here or on the host (SSH or Slurm) the run belongs to. It says
// what happened in sentences (`message`) that the window shows where it likes.
#pragma once

#include <QObject>
#include <QString>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/store/store.h"

namespace mmlab::ui {

class ResultsSession;
class RunManager;

class Launcher : public QObject {
  Q_OBJECT

 public:
  Launcher(ResultsSession& session, RunManager& manager, QObject* parent = nullptr);

  /// Whether a run's host is away just now (RemoteWatch marks them): such a run is not resumed
  /// until it answers. Without one, every host counts as reachable.
  void set_unreachable_check(std::function<bool(const store::RunRow&)> unreachable) {
    unreachable_ = std::move(unreachable);
  }

  /// Writes the experiment to the data folder and queues its runs. Returns the number queued;
  /// 0 with one sentence in `error` (and no experiment file left) when nothing was queued.
  /// `target`: "local" or a host's name (Settings ▸ Hosts). `ranks`: processes per local run
  /// (data parallel through `mmlab launch`).
  int launch_experiment(const nlohmann::json& doc, QString* error,
                        const QString& target = QStringLiteral("local"), int ranks = 1);
  /// Run ▸ Resume: queues the resume of each run of `ids` that is neither finished nor running,
  /// on the host it trained on. Returns the number queued.
  int resume_runs(const std::vector<int64_t>& ids);
  /// Queues the database's `queued` runs that the run manager has no job for (on opening it):
  /// local ones with `--resume`, those queued for a host with `mmlab remote launch`. Returns the
  /// number queued.
  int restore_queue();

  /// The host a run was launched on (Settings ▸ Hosts name), or empty for a local run.
  QString remote_host_of(const store::RunRow& run) const;
  /// Queues the resume of `run` on the host it was launched on (nothing while that host is
  /// unreachable); false for a local run.
  bool resume_on_its_host(const store::RunRow& run);

 Q_SIGNALS:
  /// One sentence for the status bar, shown `timeout_ms` long.
  void message(const QString& text, int timeout_ms);

 private:
  /// `doc` as a new file in the experiments folder beside the database; "" (and `error`) when
  /// it cannot be written.
  QString save_experiment_file(const nlohmann::json& doc, const QString& name, QString* error);
  /// Queue jobs of a remote host for the run queued as row `run_id` (uuid `uuid`).
  void enqueue_remote_launch(const QString& host, const QString& file, int64_t run_id,
                             const QString& name, const QString& uuid);
  void enqueue_remote_resume(const QString& host, int64_t run_id, const QString& name,
                             const QString& uuid);
  /// Prepares the run manager's queue of `host` (concurrent for a Slurm cluster).
  void use_host_queue(const QString& host);
  bool unreachable(const store::RunRow& run) const { return unreachable_ && unreachable_(run); }

  ResultsSession& session_;
  RunManager& manager_;
  std::function<bool(const store::RunRow&)> unreachable_;
};

}  // namespace mmlab::ui
