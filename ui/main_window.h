// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's main window: results browser (left), curves / compare / queue / notes / samples
// tabs (right; each tab is a panel of its own file). It wires the document (ResultsSession), the
// curves (CurveSet), the run manager, the launcher and the panels; it holds no data of its own
// beyond the view state saved in QSettings.
#pragma once

#include <QMainWindow>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ui/curve_data.h"
#include "ui/curve_plot.h"
#include "ui/plot_theme.h"
#include "ui/results_session.h"
#include "ui/run_manager.h"
#include "ui/run_table_model.h"

class QAction;
class QComboBox;
class QLabel;
class QLineEdit;
class QMenu;
class QSplitter;
class QTabWidget;
class QTableView;

namespace mmlab::ui {

class Launcher;
class RemoteWatch;

class ExpertHeatmap;
class ComparePanel;
class GpuMonitor;
class NotesPanel;
class QueuePanel;
class SamplesPanel;
class PointPrefetcher;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  /// `db_path` empty: the last database (QSettings) or the XDG default.
  explicit MainWindow(const QString& db_path = {}, QWidget* parent = nullptr);
  ~MainWindow() override;

  /// Opens a database; on failure shows the message and keeps the current one.
  bool open_database(const QString& path);
  /// File ▸ New database: creates an empty results database at `path` and opens it; refuses a
  /// file that exists (File ▸ Open database opens those).
  bool create_database(const QString& path);
  /// File ▸ Recent databases: the databases opened last, newest first (kept in the settings;
  /// files deleted since are left out).
  QStringList recent_databases() const;
  static constexpr int kRecentDatabases = 8;
  /// Opens an experiment file into the new-experiment dialog (a malformed file: a message).
  void open_experiment_file(const QString& path);
  /// Launcher::launch_experiment, then the chart of what was queued (on success).
  int launch_experiment(const nlohmann::json& doc, QString* error,
                        const QString& target = QStringLiteral("local"), int ranks = 1);

  ResultsSession& session() { return session_; }
  Launcher& launcher() { return *launcher_; }
  CurveSet& curves() { return curves_; }
  RunManager& manager() { return *manager_; }
  CurvePlot& plot() { return *plot_; }
  RunFilterProxy& proxy() { return *proxy_; }
  QTableView& table() { return *table_; }
  QTabWidget& tabs() { return *tabs_; }
  ExpertHeatmap& heatmap() { return *heatmap_; }
  /// Selects runs in the browser by id (and so plots them).
  void select_runs(const std::vector<int64_t>& ids);
  std::vector<int64_t> selected_runs() const;
  /// Runs the chart shows: the selection, or (nothing selected) every running run.
  std::vector<int64_t> plotted_runs() const;
  /// Show messages in the status bar instead of modal boxes (tests, e2e).
  void set_quiet(bool quiet) { quiet_ = quiet; }
  QString last_message() const { return last_message_; }
  /// What closing asks while runs train or wait in the queue ("" when none do).
  QString close_question() const;
  /// Help ▸ Keyboard shortcuts: one "keys<TAB>action" line per menu shortcut.
  QString shortcuts_text() const;
  /// Settings ▸ Runs at once per device: the queue trains up to `n` runs of each device at a
  /// time (kept in the settings).
  void set_runs_per_device(int n);
  /// View ▸ Theme: the palette of the whole studio, charts included (kept in the settings).
  void set_theme(Theme theme);
  /// Curves asked for and not read from the database yet (tests wait for 0).
  size_t pending_curves() const { return pending_.size(); }

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void build_menus();
  QWidget* build_browser();
  void on_runs_changed();
  void on_selection_changed();
  void on_job_changed(int key);
  void on_events(int key, const std::vector<ProgressEvent>& events);
  void update_plot_runs();
  void update_heatmap();
  void update_status();
  void new_experiment();
  void clone_selected();
  void delete_selected();
  void import_database();
  void export_chart();
  void export_csv();
  void stop_selected();
  void resume_selected();
  void show_message(const QString& title, const QString& text, bool error = true);
  void restore_settings();
  void remember_database(const QString& path);
  void update_recent_menu();
  void save_settings();

  ResultsSession session_;
  CurveSet curves_;
  RunManager* manager_ = nullptr;
  Launcher* launcher_ = nullptr;
  RunTableModel* model_ = nullptr;
  RunFilterProxy* proxy_ = nullptr;
  QTableView* table_ = nullptr;
  CurvePlot* plot_ = nullptr;
  ExpertHeatmap* heatmap_ = nullptr;
  ComparePanel* compare_ = nullptr;
  QueuePanel* queue_ = nullptr;
  NotesPanel* notes_ = nullptr;
  SamplesPanel* samples_ = nullptr;
  GpuMonitor* gpus_ = nullptr;
  QTabWidget* tabs_ = nullptr;
  QSplitter* splitter_ = nullptr;
  QLineEdit* filter_text_ = nullptr;
  QComboBox* filter_family_ = nullptr;
  QComboBox* filter_status_ = nullptr;
  QComboBox* filter_tag_ = nullptr;
  QLabel* status_db_ = nullptr;
  QLabel* status_runs_ = nullptr;
  QLabel* status_device_ = nullptr;
  QAction* delete_action_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  bool quiet_ = false;
  bool header_restored_ = false;
  QString last_message_;
  QTimer* live_timer_ = nullptr;
  RemoteWatch* remote_watch_ = nullptr;
  PointPrefetcher* prefetcher_ = nullptr;
  QTimer* prefetch_timer_ = nullptr;
  std::set<std::pair<int64_t, std::string>> pending_;  // asked for, not read yet
};

}  // namespace mmlab::ui
