// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's one document: an open results database. Widgets and item models go through it and
// never touch SQLite (STYLE.md 15). It polls the database once a second (a cheap PRAGMA
// data_version) so runs written by any trainer — the studio's children, a terminal, another
// machine's imported rows — show up without a restart.
#pragma once

#include <QObject>
#include <QString>
#include <QTimer>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/queue/experiment_queue.h"
#include "core/store/store.h"
#include "ui/curve_data.h"

namespace mmlab::ui {

class ResultsSession : public QObject {
  Q_OBJECT

 public:
  explicit ResultsSession(QObject* parent = nullptr);
  ~ResultsSession() override;

  /// Opens (creating when missing) the database at `path`. On failure the previous database
  /// stays open and `error` holds one sentence naming the file and the fix.
  bool open(const QString& path, QString* error);
  bool is_open() const { return store_ != nullptr; }
  QString path() const { return path_; }
  store::ResultsStore* store() { return store_.get(); }

  /// Runs as last read (refresh() re-reads).
  const std::vector<store::RunRow>& runs() const { return runs_; }
  const store::RunRow* run(int64_t id) const;
  /// Re-reads the run list; emits runsChanged. Returns false (and emits error) on failure.
  bool refresh();
  /// Polling interval in ms (0 stops polling).
  void set_poll_interval(int ms);

  /// Loads stored points into a series (the CurveSet loader). Errors leave the series empty.
  void load_points(int64_t run_id, const std::string& metric, Series& out);
  /// New stored points of runs whose curves are shown, appended to `curves` (runs started from a
  /// terminal have no event stream here; the database is their stream).
  void poll_points(CurveSet& curves, const std::vector<int64_t>& runs, const std::string& metric);

  /// Writes a `queued` row for every run of `runs` that has none yet and says what continuing
  /// does with the others (core/queue). False, with one sentence in `error` and nothing
  /// written, when the launch is refused (a missing data source, same name but another config).
  bool queue_experiment(const Experiment& experiment, const std::vector<RunConfig>& runs,
                        queue::LaunchPlan* plan, QString* error,
                        const queue::QueueOptions& options = {});
  /// The experiment file an experiment of this name was launched with ("" when none).
  std::string experiment_spec(const std::string& name);
  /// Ends a queued run that never started: `stopped` (taken off the queue) or `failed` (its
  /// trainer could not be started), with `reason`. False when it was no longer queued (or the
  /// database refused).
  bool cancel_queued_run(int64_t run_id, const QString& reason,
                         store::RunStatus status = store::RunStatus::kStopped);

  // User metadata: every call reports a failure as one sentence in `error`.
  bool add_tag(int64_t run_id, const QString& tag, QString* error);
  bool remove_tag(int64_t run_id, const QString& tag, QString* error);
  QString note(int64_t run_id);
  bool set_note(int64_t run_id, const QString& text, QString* error);
  bool delete_runs(const std::vector<int64_t>& ids, QString* error);
  /// Copies runs from another database; `summary` says how many were imported and skipped.
  bool import_from(const QString& other, QString* summary, QString* error);
  std::vector<std::string> all_tags();
  /// Names of the metrics a run has points for (empty on error).
  std::vector<std::string> metric_names(int64_t run_id);

 Q_SIGNALS:
  void runsChanged();
  void opened(const QString& path);
  void error(const QString& message);

 private:
  void poll();

  std::unique_ptr<store::ResultsStore> store_;
  QString path_;
  std::vector<store::RunRow> runs_;
  int64_t data_version_ = -1;
  QTimer poll_timer_;
};

/// How the studio names a run everywhere it lists one: "NAME #ID".
QString run_label(const store::RunRow& run);

/// Folder for experiment files the studio writes before launching (next to the database).
QString experiments_dir_for(const QString& db_path);

}  // namespace mmlab::ui
