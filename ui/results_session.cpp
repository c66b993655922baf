// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/results_session.h"

#include <QDir>
#include <QFileInfo>
#include <algorithm>
#include <cmath>
#include <set>

#include "core/util/error.h"

namespace mmlab::ui {

namespace {

// One sentence for the status bar or a message box, from whatever the store threw.
QString describe(const std::exception& e) {
  return QString::fromStdString(e.what());
}

}  // namespace

QString run_label(const store::RunRow& run) {
  return QStringLiteral("%1 #%2").arg(QString::fromStdString(run.name)).arg(run.id);
}

QString experiments_dir_for(const QString& db_path) {
  return QFileInfo(db_path).absoluteDir().filePath(QStringLiteral("experiments"));
}

ResultsSession::ResultsSession(QObject* parent) : QObject(parent) {
  connect(&poll_timer_, &QTimer::timeout, this, &ResultsSession::poll);
  poll_timer_.setInterval(1000);
}

ResultsSession::~ResultsSession() = default;

bool ResultsSession::open(const QString& path, QString* error) {
  try {
    // A short busy timeout: the studio's own writes are tiny, and a database locked by another
    // program should be reported in seconds, not freeze the window for the store's default 10 s.
    store::OpenOptions options;
    options.busy_timeout = std::chrono::milliseconds(3000);
    auto s = std::make_unique<store::ResultsStore>(path.toStdString(), options);
    store_ = std::move(s);
    path_ = QFileInfo(path).absoluteFilePath();
    data_version_ = -1;
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  Q_EMIT opened(path_);
  refresh();
  if (poll_timer_.interval() > 0) poll_timer_.start();
  return true;
}

const store::RunRow* ResultsSession::run(int64_t id) const {
  for (const auto& r : runs_)
    if (r.id == id) return &r;
  return nullptr;
}

bool ResultsSession::refresh() {
  if (!store_) return false;
  try {
    runs_ = store_->reader().list_runs();
    data_version_ = store_->reader().data_version();
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
    return false;
  }
  Q_EMIT runsChanged();
  return true;
}

void ResultsSession::set_poll_interval(int ms) {
  poll_timer_.setInterval(ms);
  if (ms <= 0) {
    poll_timer_.stop();
  } else if (store_) {
    poll_timer_.start();
  }
}

void ResultsSession::poll() {
  if (!store_) return;
  try {
    // data_version changes when another connection commits (a running run heartbeats every few
    // seconds). A trainer killed with SIGKILL commits nothing, so without news the runs shown
    // as running are derived again: one that has become lost is worth a refresh.
    const int64_t v = store_->reader().data_version();
    if (v == data_version_) {
      std::set<int64_t> shown_running;
      for (const auto& r : runs_)
        if (r.effective_status == store::RunStatus::kRunning) shown_running.insert(r.id);
      if (shown_running.empty()) return;
      const auto lost = store_->reader().lost_runs(store_->reader().lost_after_seconds());
      if (std::none_of(lost.begin(), lost.end(),
                       [&](int64_t id) { return shown_running.count(id) > 0; }))
        return;
    }
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
    return;
  }
  refresh();
}

bool ResultsSession::queue_experiment(const Experiment& experiment,
                                      const std::vector<RunConfig>& runs, queue::LaunchPlan* plan,
                                      QString* error, const queue::QueueOptions& options) {
  if (!store_) return false;
  try {
    *plan = queue::queue_experiment(*store_, experiment, runs, options);
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  refresh();
  return true;
}

std::string ResultsSession::experiment_spec(const std::string& name) {
  if (!store_) return {};
  try {
    if (auto e = store_->reader().find_experiment(name)) return e->spec_json;
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
  }
  return {};
}

bool ResultsSession::cancel_queued_run(int64_t run_id, const QString& reason,
                                       store::RunStatus status) {
  if (!store_) return false;
  bool cancelled = false;
  try {
    cancelled = store_->metadata().cancel_queued_run(run_id, reason.toStdString(), status);
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
    return false;
  }
  refresh();
  return cancelled;
}

void ResultsSession::load_points(int64_t run_id, const std::string& metric, Series& out) {
  if (!store_) return;
  try {
    for (const store::PointRow& p : store_->reader().points(run_id, metric))
      out.append(p.step, p.tokens, p.wall, p.value);
    out.stored_sessions = store_->reader().sessions(run_id);
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
  }
}

void ResultsSession::poll_points(CurveSet& curves, const std::vector<int64_t>& runs,
                                 const std::string& metric) {
  if (!store_) return;
  bool any = false;
  try {
    for (int64_t id : runs) {
      const RunCurves* rc = curves.find(id);
      if (!rc) continue;
      auto loaded = rc->loaded.find(metric);
      if (loaded == rc->loaded.end() || !loaded->second) continue;  // loads fully on first use
      auto it = rc->metrics.find(metric);
      const int64_t after =
          it == rc->metrics.end() || it->second.step.empty() ? 0 : int64_t(it->second.step.back());
      // A run followed here may have been resumed since its curves were read.
      curves.set_sessions(id, store_->reader().sessions(id));
      for (const store::PointRow& p : store_->reader().points_since(id, metric, after)) {
        curves.append(id, metric, p.step, p.tokens, p.wall, p.value);
        any = true;
      }
    }
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
  }
  if (any) Q_EMIT curves.changed();
}

bool ResultsSession::add_tag(int64_t run_id, const QString& tag, QString* error) {
  try {
    store_->metadata().add_tag(run_id, tag.toStdString());
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  refresh();
  return true;
}

bool ResultsSession::remove_tag(int64_t run_id, const QString& tag, QString* error) {
  try {
    store_->metadata().remove_tag(run_id, tag.toStdString());
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  refresh();
  return true;
}

QString ResultsSession::note(int64_t run_id) {
  if (!store_) return {};
  try {
    return QString::fromStdString(store_->reader().note(run_id));
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
    return {};
  }
}

bool ResultsSession::set_note(int64_t run_id, const QString& text, QString* error) {
  try {
    store_->metadata().set_note(run_id, text.toStdString());
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  return true;
}

bool ResultsSession::delete_runs(const std::vector<int64_t>& ids, QString* error) {
  try {
    for (int64_t id : ids) store_->metadata().delete_run(id);
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    refresh();
    return false;
  }
  refresh();
  return true;
}

bool ResultsSession::import_from(const QString& other, QString* summary, QString* error) {
  if (!store_) return false;
  try {
    const store::ImportResult r = store_->import_runs_from(other.toStdString());
    if (summary)
      *summary = tr("Imported %1 run(s) from %2; %3 already present.")
                     .arg(r.imported)
                     .arg(QFileInfo(other).fileName())
                     .arg(r.skipped);
  } catch (const std::exception& e) {
    if (error) *error = describe(e);
    return false;
  }
  refresh();
  return true;
}

std::vector<std::string> ResultsSession::all_tags() {
  if (!store_) return {};
  try {
    return store_->reader().all_tags();
  } catch (const std::exception&) {
    return {};
  }
}

std::vector<std::string> ResultsSession::metric_names(int64_t run_id) {
  if (!store_) return {};
  try {
    return store_->reader().metric_names(run_id);
  } catch (const std::exception& e) {
    Q_EMIT error(describe(e));
    return {};
  }
}

}  // namespace mmlab::ui
