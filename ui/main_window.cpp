// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/main_window.h"

#include <signal.h>

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>
#include <set>

#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/results/metric_names.h"
#include "core/util/fs.h"
#include "ui/compare_panel.h"
#include "ui/experiment_dialog.h"
#include "ui/expert_heatmap.h"
#include "ui/gpu_monitor.h"
#include "ui/hosts_dialog.h"
#include "ui/launcher.h"
#include "ui/notes_panel.h"
#include "ui/plot_theme.h"
#include "ui/point_prefetcher.h"
#include "ui/qcp.h"
#include "ui/queue_panel.h"
#include "ui/remote_watch.h"
#include "ui/samples_panel.h"

namespace mmlab::ui {

using nlohmann::json;

namespace {

// Runs of one seed group share experiment and name up to the "/seed-N" suffix that
// parse_experiment gives each seed of a "seeds" list.
QString group_of(const store::RunRow& r) {
  QString name = QString::fromStdString(r.name);
  const int cut = name.lastIndexOf(QLatin1String("/seed-"));
  if (cut > 0) name.truncate(cut);
  return QString::fromStdString(r.experiment) + QLatin1Char('/') + name;
}

}  // namespace

MainWindow::MainWindow(const QString& db_path, QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("MoE-Mamba Studio"));
  setWindowIcon(QIcon(QStringLiteral(":/mmlab/icons/mmlab-studio.svg")));
  manager_ = new RunManager(RunManager::default_program(), this);
  launcher_ = new Launcher(session_, *manager_, this);
  launcher_->set_unreachable_check(
      [this](const store::RunRow& r) { return model_ && model_->unreachable(r); });
  connect(launcher_, &Launcher::message, this,
          [this](const QString& text, int ms) { statusBar()->showMessage(text, ms); });
  // Stored curves are read on a worker thread; requests made while handling one event are sent
  // as one batch, and a batch re-asks for whatever an earlier, superseded one had not read yet.
  prefetcher_ = new PointPrefetcher(this);
  prefetch_timer_ = new QTimer(this);
  prefetch_timer_->setSingleShot(true);
  prefetch_timer_->setInterval(0);
  connect(prefetch_timer_, &QTimer::timeout, this, [this] {
    if (pending_.empty() || !session_.is_open()) return;
    prefetcher_->request(session_.path(), {pending_.begin(), pending_.end()});
    statusBar()->showMessage(tr("Reading %1 curve(s)…").arg(pending_.size()));
  });
  curves_.set_requester([this](int64_t run, const std::string& metric) {
    pending_.insert({run, metric});
    prefetch_timer_->start();
  });
  connect(prefetcher_, &PointPrefetcher::loaded, this,
          [this](qint64 run, const QString& metric, std::shared_ptr<Series> points) {
            const std::string m = metric.toStdString();
            if (!pending_.erase({run, m})) return;  // forgotten meanwhile (another database)
            curves_.insert_loaded(run, m, std::move(*points));
          });
  connect(prefetcher_, &PointPrefetcher::done, this, [this](const QString& error) {
    if (!error.isEmpty()) {
      statusBar()->showMessage(error, 10000);
      pending_.clear();
      return;
    }
    statusBar()->clearMessage();
    // Views that read curves directly refresh with what arrived.
    compare_->refresh();
    update_heatmap();
  });

  splitter_ = new QSplitter(Qt::Horizontal, this);
  splitter_->addWidget(build_browser());
  tabs_ = new QTabWidget(this);
  plot_ = new CurvePlot(&curves_, this);
  tabs_->addTab(plot_, tr("Curves"));
  compare_ = new ComparePanel(session_, curves_, this);
  tabs_->addTab(compare_, tr("Compare"));
  heatmap_ = new ExpertHeatmap(&curves_, this);
  tabs_->addTab(heatmap_, tr("Experts"));
  queue_ = new QueuePanel(*manager_, session_, this);
  tabs_->addTab(queue_, tr("Queue"));
  notes_ = new NotesPanel(session_, this);
  connect(notes_, &NotesPanel::message, this,
          [this](const QString& title, const QString& text) { show_message(title, text); });
  connect(notes_, &NotesPanel::status, this,
          [this](const QString& text) { statusBar()->showMessage(text, 3000); });
  tabs_->addTab(notes_, tr("Tags && notes"));
  samples_ = new SamplesPanel(
      session_, [this] { return manager_->program(); }, this);
  tabs_->addTab(samples_, tr("Samples"));
  gpus_ = new GpuMonitor(this);
  connect(gpus_, &GpuMonitor::changed, this, &MainWindow::update_status);
  splitter_->addWidget(tabs_);
  splitter_->setStretchFactor(1, 1);
  // Both sides may be narrowed or widened by the splitter; neither disappears.
  splitter_->setChildrenCollapsible(false);
  plot_->set_empty_text(
      tr("Select runs in the browser to see their curves, or launch an experiment: "
         "Run ▸ Launch quick comparison."));
  setCentralWidget(splitter_);

  status_db_ = new QLabel(this);
  status_runs_ = new QLabel(this);
  status_device_ = new QLabel(this);
  statusBar()->addWidget(status_db_, 1);
  statusBar()->addPermanentWidget(status_runs_);
  statusBar()->addPermanentWidget(status_device_);
  build_menus();

  connect(&session_, &ResultsSession::runsChanged, this, &MainWindow::on_runs_changed);
  connect(&session_, &ResultsSession::error, this,
          [this](const QString& m) { statusBar()->showMessage(m, 10000); });
  connect(manager_, &RunManager::jobChanged, this, &MainWindow::on_job_changed);
  connect(manager_, &RunManager::eventsReceived, this, &MainWindow::on_events);
  connect(plot_, &CurvePlot::metricChanged, compare_, &ComparePanel::refresh);

  // Runs without an event stream here (started from a terminal, or left running by an earlier
  // studio) are followed through the database once a second.
  live_timer_ = new QTimer(this);
  live_timer_->setInterval(1000);
  connect(live_timer_, &QTimer::timeout, this, [this] {
    std::set<int64_t> streamed;
    for (const RunJob& j : manager_->jobs())
      if (is_active(j.state) && j.run_id >= 0) streamed.insert(j.run_id);
    std::vector<int64_t> follow;
    for (int64_t id : plotted_runs())
      if (const store::RunRow* r = session_.run(id);
          r && r->effective_status == store::RunStatus::kRunning && !streamed.count(id))
        follow.push_back(id);
    if (!follow.empty()) session_.poll_points(curves_, follow, plot_->metric().toStdString());
  });
  live_timer_->start();
  remote_watch_ = new RemoteWatch(session_, *manager_, *model_, this);
  connect(remote_watch_, &RemoteWatch::synced, &session_, &ResultsSession::refresh);

  restore_settings();
  QString path = db_path;
  if (path.isEmpty()) path = QSettings().value(QStringLiteral("db")).toString();
  if (path.isEmpty()) path = QString::fromStdString(default_db_path().string());
  open_database(path);
  update_status();
}

MainWindow::~MainWindow() = default;

void MainWindow::build_menus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* a = file->addAction(tr("&New experiment…"), this, &MainWindow::new_experiment);
  a->setShortcut(QKeySequence::New);
  a->setObjectName(QStringLiteral("actionNew"));
  a = file->addAction(tr("&Open experiment file…"), this, [this] {
    const QString p = QFileDialog::getOpenFileName(this, tr("Open experiment"), QString(),
                                                   tr("Experiment (*.json);;All files (*)"));
    if (!p.isEmpty()) open_experiment_file(p);
  });
  a->setShortcut(QKeySequence::Open);
  file->addAction(tr("Open &database…"), this, [this] {
    const QString p =
        QFileDialog::getOpenFileName(this, tr("Open results database"), session_.path(),
                                     tr("SQLite (*.sqlite *.db);;All files (*)"));
    if (!p.isEmpty()) open_database(p);
  });
  a = file->addAction(tr("New data&base…"), this, [this] {
    const QString p = QFileDialog::getSaveFileName(
        this, tr("New results database"),
        QFileInfo(session_.path()).dir().filePath(QStringLiteral("results.sqlite")),
        tr("SQLite (*.sqlite *.db);;All files (*)"), nullptr, QFileDialog::DontConfirmOverwrite);
    if (!p.isEmpty()) create_database(p);
  });
  a->setObjectName(QStringLiteral("actionNewDatabase"));
  recent_menu_ = file->addMenu(tr("&Recent databases"));
  recent_menu_->setObjectName(QStringLiteral("menuRecent"));
  update_recent_menu();
  file->addAction(tr("&Import runs from database…"), this, &MainWindow::import_database);
  file->addSeparator();
  a = file->addAction(tr("&Export chart…"), this, &MainWindow::export_chart);
  a->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
  file->addAction(tr("Export chart data as &CSV…"), this, &MainWindow::export_csv);
  file->addSeparator();
  a = file->addAction(tr("&Quit"), this, &QWidget::close);
  a->setShortcut(QKeySequence::Quit);

  QMenu* run = menuBar()->addMenu(tr("&Run"));
  // The quick comparison is shown before it starts (what it trains, for how long), in the
  // same dialog as File > New experiment.
  a = run->addAction(tr("Launch &quick comparison…"), this, &MainWindow::new_experiment);
  a->setObjectName(QStringLiteral("actionQuick"));
  run->addAction(tr("&Clone && edit…"), this, &MainWindow::clone_selected);
  a = run->addAction(tr("&Stop"), this, &MainWindow::stop_selected);
  a->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));
  run->addAction(tr("&Resume"), this, &MainWindow::resume_selected);
  run->addSeparator();
  delete_action_ = run->addAction(tr("&Delete runs…"), this, &MainWindow::delete_selected);
  delete_action_->setShortcut(QKeySequence::Delete);
  delete_action_->setShortcutContext(Qt::WidgetWithChildrenShortcut);
  table_->addAction(delete_action_);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  a = view->addAction(tr("&Fit all"), plot_, &CurvePlot::fit_all);
  a->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_0));
  view->addAction(tr("&Refresh"), &session_, &ResultsSession::refresh)
      ->setShortcut(QKeySequence::Refresh);
  // The whole studio, charts included, in the desktop's palette or a fixed light or dark one.
  QMenu* theme = view->addMenu(tr("&Theme"));
  auto* themes = new QActionGroup(theme);
  for (const auto& [t, text] :
       {std::pair{Theme::kSystem, tr("&System")}, std::pair{Theme::kLight, tr("&Light")},
        std::pair{Theme::kDark, tr("&Dark")}}) {
    QAction* choice = theme->addAction(text);
    choice->setCheckable(true);
    choice->setObjectName(QStringLiteral("actionTheme_") + theme_name(t));
    themes->addAction(choice);
    connect(choice, &QAction::triggered, this, [this, t = t] { set_theme(t); });
  }

  QMenu* settings = menuBar()->addMenu(tr("&Settings"));
  settings->addAction(tr("&Hosts…"), this, [this] { HostsDialog(this).exec(); });
  a = settings->addAction(tr("&Runs at once per device…"), this, [this] {
    bool ok = false;
    const int n = QInputDialog::getInt(
        this, tr("Runs at once per device"),
        tr("How many queued runs train at the same time on each device (the CPU, each GPU, each "
           "host). More than one shares the device between them."),
        manager_->max_per_device(), 1, 64, 1, &ok);
    if (ok) set_runs_per_device(n);
  });
  a->setObjectName(QStringLiteral("actionRunsPerDevice"));

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&Keyboard shortcuts"), this,
                  [this] { show_message(tr("Keyboard shortcuts"), shortcuts_text(), false); });
  help->addAction(tr("&About"), this, [this] {
    QMessageBox::about(
        this, tr("About MoE-Mamba Studio"),
        tr("<b>MoE-Mamba Studio %1</b><br>Launch, watch and compare MoE-Mamba, Mamba and "
           "Transformer runs.<br>Documentation: docs/studio.md and docs/cli.md of the source "
           "tree.<br>GPL-3.0-or-later.")
            .arg(QApplication::applicationVersion().toHtmlEscaped()));
  });
}

void MainWindow::set_runs_per_device(int n) {
  manager_->set_max_per_device(n);
  QSettings().setValue(QStringLiteral("runs/per_device"), manager_->max_per_device());
  update_status();
}

void MainWindow::set_theme(Theme theme) {
  apply_theme(theme);
  QSettings().setValue(QStringLiteral("view/theme"), theme_name(theme));
  if (auto* a = findChild<QAction*>(QStringLiteral("actionTheme_") + theme_name(theme)))
    a->setChecked(true);
}

QString MainWindow::shortcuts_text() const {
  // Every menu action that has a shortcut, in menu order: the list cannot drift from the menus.
  QStringList lines;
  for (QAction* menu : menuBar()->actions()) {
    if (!menu->menu()) continue;
    for (QAction* a : menu->menu()->actions())
      if (!a->shortcut().isEmpty())
        lines << QStringLiteral("%1\t%2").arg(a->shortcut().toString(QKeySequence::NativeText),
                                              a->text().remove(QLatin1Char('&')));
  }
  lines << tr("Backspace\tprevious zoom of the chart") << tr("Double-click\tfit the chart");
  return lines.join(QLatin1Char('\n'));
}

QWidget* MainWindow::build_browser() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  v->setContentsMargins(4, 4, 4, 4);
  auto* filters = new QHBoxLayout;
  filter_text_ = new QLineEdit(w);
  filter_text_->setPlaceholderText(tr("Filter runs (name, experiment, family, tag)"));
  filter_text_->setClearButtonEnabled(true);
  filter_family_ = new QComboBox(w);
  filter_family_->addItem(tr("all families"), QString());
  for (const std::string& f : known_families())
    filter_family_->addItem(QString::fromStdString(f), QString::fromStdString(f));
  filter_status_ = new QComboBox(w);
  filter_status_->addItem(tr("any status"), QString());
  for (RunStatus s : kAllRunStatuses) {
    const QString word = QString::fromLatin1(to_string(s).data(), int(to_string(s).size()));
    filter_status_->addItem(word, word);
  }
  filter_tag_ = new QComboBox(w);
  filter_tag_->addItem(tr("any tag"), QString());
  filters->addWidget(filter_text_, 1);
  filters->addWidget(filter_family_);
  filters->addWidget(filter_status_);
  filters->addWidget(filter_tag_);
  v->addLayout(filters);

  model_ = new RunTableModel(this);
  proxy_ = new RunFilterProxy(this);
  proxy_->setSourceModel(model_);
  table_ = new QTableView(w);
  table_->setObjectName(QStringLiteral("runTable"));
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(RunTableModel::kCreated, Qt::DescendingOrder);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  table_->verticalHeader()->hide();
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->horizontalHeader()->setSectionsMovable(true);
  table_->setAlternatingRowColors(true);
  table_->setContextMenuPolicy(Qt::ActionsContextMenu);
  // The column chooser: the header's context menu ticks columns on and off (kept with the
  // header's saved state).
  QHeaderView* header = table_->horizontalHeader();
  header->setContextMenuPolicy(Qt::ActionsContextMenu);
  for (int c = 0; c < RunTableModel::kColumnCount; ++c) {
    auto* show =
        new QAction(model_->headerData(c, Qt::Horizontal, Qt::DisplayRole).toString(), header);
    show->setObjectName(QStringLiteral("showColumn%1").arg(c));
    show->setCheckable(true);
    show->setChecked(true);
    connect(show, &QAction::toggled, header,
            [header, c](bool on) { header->setSectionHidden(c, !on); });
    header->addAction(show);
  }
  v->addWidget(table_, 1);

  connect(filter_text_, &QLineEdit::textChanged, proxy_, &RunFilterProxy::set_text);
  connect(filter_family_, qOverload<int>(&QComboBox::currentIndexChanged), this,
          [this] { proxy_->set_family(filter_family_->currentData().toString()); });
  connect(filter_status_, qOverload<int>(&QComboBox::currentIndexChanged), this,
          [this] { proxy_->set_status(filter_status_->currentData().toString()); });
  connect(filter_tag_, qOverload<int>(&QComboBox::currentIndexChanged), this,
          [this] { proxy_->set_tag(filter_tag_->currentData().toString()); });
  connect(table_->selectionModel(), &QItemSelectionModel::selectionChanged, this,
          &MainWindow::on_selection_changed);
  connect(table_, &QTableView::doubleClicked, this, [this] { tabs_->setCurrentWidget(plot_); });
  return w;
}

bool MainWindow::open_database(const QString& path) {
  QString err;
  if (!session_.open(path, &err)) {
    show_message(tr("Could not open the database"), err);
    update_status();
    return false;
  }
  curves_.clear();
  pending_.clear();
  on_runs_changed();  // labels and seed groups of the new database's runs
  if (!header_restored_) table_->resizeColumnsToContents();
  QSettings().setValue(QStringLiteral("db"), session_.path());
  remember_database(session_.path());
  setWindowTitle(tr("%1 — MoE-Mamba Studio").arg(QFileInfo(session_.path()).fileName()));
  launcher_->restore_queue();
  update_status();
  return true;
}

bool MainWindow::create_database(const QString& path) {
  const QFileInfo info(path);
  if (info.exists()) {
    show_message(tr("New database"),
                 tr("%1 exists already: open it with File ▸ Open database, or choose a new name.")
                     .arg(info.absoluteFilePath()));
    return false;
  }
  if (!QDir().mkpath(info.absolutePath())) {
    show_message(
        tr("New database"),
        tr("Could not create the folder %1: check its permissions.").arg(info.absolutePath()));
    return false;
  }
  if (!open_database(path)) return false;  // the store creates the file with its schema
  statusBar()->showMessage(tr("Created %1.").arg(session_.path()), 8000);
  return true;
}

QStringList MainWindow::recent_databases() const {
  // Most recent first; files deleted since are left out.
  QStringList out;
  for (const QString& p : QSettings().value(QStringLiteral("recent_databases")).toStringList())
    if (QFileInfo::exists(p) && !out.contains(p)) out << p;
  return out;
}

void MainWindow::remember_database(const QString& path) {
  QStringList list = recent_databases();
  list.removeAll(path);
  list.prepend(path);
  while (list.size() > kRecentDatabases) list.removeLast();
  QSettings().setValue(QStringLiteral("recent_databases"), list);
  update_recent_menu();
}

void MainWindow::update_recent_menu() {
  if (!recent_menu_) return;
  recent_menu_->clear();
  const QStringList list = recent_databases();
  for (int i = 0; i < list.size(); ++i) {
    const QString path = list[i];
    QAction* a =
        recent_menu_->addAction(QStringLiteral("&%1 %2").arg(i + 1).arg(QFileInfo(path).fileName()),
                                this, [this, path] { open_database(path); });
    a->setObjectName(QStringLiteral("recentDatabase%1").arg(i));
    a->setToolTip(path);
    a->setData(path);
  }
  if (list.isEmpty()) recent_menu_->addAction(tr("(none yet)"))->setEnabled(false);
}

void MainWindow::open_experiment_file(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    show_message(tr("Open experiment"), tr("Could not read %1: %2.").arg(path, f.errorString()));
    return;
  }
  json doc;
  try {
    doc = parse_json_text(f.readAll().toStdString(), path.toStdString());
  } catch (const std::exception& e) {
    show_message(tr("Open experiment"), QString::fromStdString(e.what()));
    return;
  }
  ExperimentDialog dlg(this);
  dlg.set_document(doc);
  if (dlg.exec() != QDialog::Accepted) return;
  QString err;
  if (launch_experiment(dlg.document(), &err, dlg.target(), dlg.ranks_per_run()) == 0) {
    show_message(tr("Launch"), err);
  }
}

int MainWindow::launch_experiment(const json& doc, QString* error, const QString& target,
                                  int ranks) {
  const int queued = launcher_->launch_experiment(doc, error, target, ranks);
  if (queued > 0) tabs_->setCurrentWidget(plot_);
  return queued;
}

void MainWindow::new_experiment() {
  ExperimentDialog dlg(this);
  if (dlg.exec() != QDialog::Accepted) return;
  QString err;
  if (launch_experiment(dlg.document(), &err, dlg.target(), dlg.ranks_per_run()) == 0) {
    show_message(tr("Launch"), err);
  }
}

void MainWindow::clone_selected() {
  const auto ids = selected_runs();
  if (ids.empty()) return;
  const store::RunRow* r = session_.run(ids.front());
  if (!r) return;
  json cfg;
  try {
    cfg = json::parse(r->config_json);
  } catch (const std::exception&) {
    show_message(tr("Clone & edit"), tr("Run %1 has no readable config.").arg(r->id));
    return;
  }
  ExperimentDialog dlg(this);
  dlg.set_document(ExperimentDialog::clone_document(cfg, QString::fromStdString(r->name)), cfg);
  if (dlg.exec() != QDialog::Accepted) return;
  QString err;
  if (launch_experiment(dlg.document(), &err, dlg.target(), dlg.ranks_per_run()) == 0) {
    show_message(tr("Launch"), err);
  }
}

void MainWindow::delete_selected() {
  const auto ids = selected_runs();
  if (ids.empty()) return;
  for (const RunJob& j : manager_->jobs())
    if (is_active(j.state) && std::find(ids.begin(), ids.end(), j.run_id) != ids.end()) {
      show_message(tr("Delete runs"), tr("Stop run %1 before deleting it.").arg(j.name));
      return;
    }
  if (!quiet_ &&
      QMessageBox::question(this, tr("Delete runs"),
                            tr("Delete %n run(s) with their curves, events, tags and notes? "
                               "Checkpoint files stay on disk.",
                               nullptr, int(ids.size()))) != QMessageBox::Yes)
    return;
  QString err;
  if (!session_.delete_runs(ids, &err)) show_message(tr("Delete runs"), err);
  for (int64_t id : ids) curves_.remove(id);
}

void MainWindow::import_database() {
  const QString p = QFileDialog::getOpenFileName(this, tr("Import runs from"), QString(),
                                                 tr("SQLite (*.sqlite *.db);;All files (*)"));
  if (p.isEmpty()) return;
  QString summary, err;
  if (session_.import_from(p, &summary, &err))
    statusBar()->showMessage(summary, 8000);
  else
    show_message(tr("Import runs"), err);
}

void MainWindow::export_chart() {
  QString filter;
  const QString p = QFileDialog::getSaveFileName(
      this, tr("Export chart"), plot_->metric() + QStringLiteral(".png"),
      tr("PNG image (*.png);;PDF (*.pdf);;SVG (*.svg)"), &filter);
  if (p.isEmpty()) return;
  bool ok = false;
  const QString size = QInputDialog::getItem(
      this, tr("Export chart"), tr("Size and style"),
      {tr("paper: 1200×800, serif, no raw curves"), tr("screen: 1600×1000"), tr("as shown")}, 0,
      false, &ok);
  if (!ok) return;
  const bool paper = size.startsWith(tr("paper"));
  int w = paper ? 1200 : 1600, h = paper ? 800 : 1000;
  if (size == tr("as shown")) {
    w = plot_->plot()->width();
    h = plot_->plot()->height();
  }
  QString err;
  if (!plot_->export_image(p, w, h, paper, &err))
    show_message(tr("Export chart"), err);
  else
    statusBar()->showMessage(tr("Wrote %1.").arg(p), 5000);
}

void MainWindow::export_csv() {
  const QString p = QFileDialog::getSaveFileName(
      this, tr("Export chart data"), plot_->metric() + QStringLiteral(".csv"), tr("CSV (*.csv)"));
  if (p.isEmpty()) return;
  QString err;
  if (!plot_->export_csv(p, &err)) show_message(tr("Export CSV"), err);
}

void MainWindow::stop_selected() {
  const auto ids = selected_runs();
  for (const RunJob& j : manager_->jobs())
    if (std::find(ids.begin(), ids.end(), j.run_id) != ids.end()) manager_->stop(j.key);
  for (int k : queue_->selected_jobs()) manager_->stop(k);
  // A run of another process (a terminal, an earlier studio) on this host: SIGTERM by pid.
  for (int64_t id : ids) {
    const store::RunRow* r = session_.run(id);
    bool ours = false;
    for (const RunJob& j : manager_->jobs()) ours |= j.run_id == id && is_active(j.state);
    if (r && !ours && r->effective_status == store::RunStatus::kRunning && r->pid > 0 &&
        r->host == store::current_host())
      ::kill(pid_t(r->pid), SIGTERM);
  }
}

void MainWindow::resume_selected() {
  launcher_->resume_runs(selected_runs());
}

void MainWindow::on_runs_changed() {
  const auto selected = selected_runs();
  const bool was_empty = model_->rowCount() == 0;
  model_->set_rows(session_.runs());
  if (remote_watch_) remote_watch_->update_unreachable();
  // First rows of a fresh layout: size the columns to what they hold.
  if (was_empty && model_->rowCount() > 0 && !header_restored_) table_->resizeColumnsToContents();
  select_runs(selected);
  for (const store::RunRow& r : session_.runs()) {
    RunCurves& rc = curves_.run(r.id);
    rc.label = run_label(r);
    rc.group = group_of(r);
    rc.total_steps = r.total_steps;
    // The wall-clock axis of runs without recorded sessions: started_at + wall (CurveSet::x_of).
    if (r.started_at) curves_.set_start_time(r.id, *r.started_at);
  }
  // Tag filter choices follow the tags in use.
  const QString tag = filter_tag_->currentData().toString();
  QSignalBlocker block(filter_tag_);
  filter_tag_->clear();
  filter_tag_->addItem(tr("any tag"), QString());
  for (const std::string& t : session_.all_tags())
    filter_tag_->addItem(QString::fromStdString(t), QString::fromStdString(t));
  filter_tag_->setCurrentIndex(std::max(0, filter_tag_->findData(tag)));
  update_plot_runs();
  update_status();
}

void MainWindow::select_runs(const std::vector<int64_t>& ids) {
  QItemSelection sel;
  for (int64_t id : ids) {
    if (auto row = model_->row_of(id)) {
      const QModelIndex src = model_->index(*row, 0);
      const QModelIndex p = proxy_->mapFromSource(src);
      if (p.isValid()) sel.select(p, p.siblingAtColumn(RunTableModel::kColumnCount - 1));
    }
  }
  table_->selectionModel()->select(sel, QItemSelectionModel::ClearAndSelect);
}

std::vector<int64_t> MainWindow::selected_runs() const {
  std::vector<int64_t> ids;
  for (const QModelIndex& i : table_->selectionModel()->selectedRows())
    ids.push_back(i.data(RunTableModel::kIdRole).toLongLong());
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<int64_t> MainWindow::plotted_runs() const {
  std::vector<int64_t> ids = selected_runs();
  if (!ids.empty()) return ids;
  // Nothing selected: what is training now, plus every run launched from this window (so a run
  // that just finished stays on the chart it was watched on).
  std::set<int64_t> live;
  for (const store::RunRow& r : session_.runs())
    if (r.effective_status == store::RunStatus::kRunning) live.insert(r.id);
  for (const RunJob& j : manager_->jobs())
    if (j.run_id >= 0) live.insert(j.run_id);
  return {live.begin(), live.end()};
}

void MainWindow::update_plot_runs() {
  const auto ids = plotted_runs();
  if (ids != plot_->runs()) plot_->set_runs(ids);
}

void MainWindow::on_selection_changed() {
  update_plot_runs();
  const auto ids = selected_runs();
  compare_->set_runs(ids);
  notes_->set_runs(ids);
  samples_->set_runs(ids);
  update_heatmap();
  delete_action_->setEnabled(!selected_runs().empty());
}

void MainWindow::update_heatmap() {
  // The first selected run that has expert-load curves (a MoE run), else the first selected.
  const auto ids = selected_runs();
  if (ids.empty()) return;
  for (int64_t id : ids) {
    const auto names = session_.metric_names(id);
    const bool moe = std::any_of(names.begin(), names.end(), [](const std::string& n) {
      return n.rfind(metric::kExpertLoadPrefix, 0) == 0;
    });
    if (moe || id == ids.back()) {
      const store::RunRow* r = session_.run(id);
      heatmap_->set_run(id, r ? run_label(*r) : QString::number(id), names);
      return;
    }
  }
}

void MainWindow::on_job_changed(int key) {
  const RunJob* j = manager_->job(key);
  // Stopped before it ever started (the user took it off the queue; tries that found its host
  // unreachable started nothing): its row stops being queued too, or the next start of the
  // studio would queue it again.
  if (j && j->state == RunState::kStopped && (j->attempts == 0 || j->host_waits > 0) &&
      j->run_id >= 0)
    session_.cancel_queued_run(j->run_id, tr("Taken off the queue before it started."));
  // A launch that failed before its trainer took the run (no trainer binary, a usage error):
  // the run keeps its row, failed with the sentence, instead of waiting queued without a word.
  // (A trainer that took it stores its own failure; the row is then no longer queued.)
  if (j && j->state == RunState::kFailed && j->run_id >= 0 && !j->message.isEmpty())
    session_.cancel_queued_run(j->run_id, j->message, store::RunStatus::kFailed);
  if (j && j->run_id >= 0 && !session_.run(j->run_id)) session_.refresh();  // a new run row
  // A host queue that waits for its host shows its queued rows unreachable, and not after.
  if (j && remote_watch_ && RunManager::is_host_queue(j->device))
    remote_watch_->apply_unreachable();
  if (j && is_done(j->state)) {
    session_.refresh();
    if (j->state == RunState::kFailed)
      statusBar()->showMessage(tr("%1 failed: %2").arg(j->name, j->message), 15000);
  }
  update_plot_runs();
  update_status();
}

void MainWindow::on_events(int, const std::vector<ProgressEvent>& events) {
  curves_.apply(events);
}

void MainWindow::update_status() {
  status_db_->setText(session_.is_open() ? tr("Database: %1").arg(session_.path())
                                         : tr("No database open"));
  int running = 0, lost = 0, away = 0;
  for (const store::RunRow& r : session_.runs()) {
    if (model_->unreachable(r)) {
      ++away;  // its host is away: neither running as far as we can see, nor lost
      continue;
    }
    running += r.effective_status == store::RunStatus::kRunning;
    lost += r.effective_status == store::RunStatus::kLost;
  }
  status_runs_->setText(
      tr("%1 runs · %2 running · %3 lost%4 · %5 queued here")
          .arg(session_.runs().size())
          .arg(running)
          .arg(lost)
          .arg(away ? tr(" · %1 unreachable").arg(away) : QString())
          .arg(std::count_if(manager_->jobs().begin(), manager_->jobs().end(),
                             [](const RunJob& j) { return j.state == RunState::kQueued; })));
  const QStringList& gpus = gpus_->devices();
  status_device_->setText(gpus.isEmpty()
                              ? tr("CPU only")
                              : tr("%1 GPU(s) %2").arg(gpus.size()).arg(gpus_->memory_text()));
}

void MainWindow::show_message(const QString& title, const QString& text, bool error) {
  last_message_ = text;
  statusBar()->showMessage(text, 15000);
  if (quiet_) return;
  if (error)
    QMessageBox::warning(this, title, text);
  else
    QMessageBox::information(this, title, text);
}

void MainWindow::restore_settings() {
  QSettings s;
  restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray());
  restoreState(s.value(QStringLiteral("window/state")).toByteArray());
  if (!splitter_->restoreState(s.value(QStringLiteral("window/splitter")).toByteArray()))
    splitter_->setSizes({560, 840});
  header_restored_ = table_->horizontalHeader()->restoreState(
      s.value(QStringLiteral("window/table")).toByteArray());
  for (QAction* a : table_->horizontalHeader()->actions()) {
    const int c = a->objectName().mid(int(qstrlen("showColumn"))).toInt();
    QSignalBlocker block(a);
    a->setChecked(!table_->horizontalHeader()->isSectionHidden(c));
  }
  // Only a theme the user chose changes the palette: "system" leaves the platform's alone.
  // (Before View ▸ Theme, `--dark` kept a flag, view/dark.)
  const QString chosen =
      s.value(QStringLiteral("view/theme"), s.value(QStringLiteral("view/dark"), false).toBool()
                                                ? QStringLiteral("dark")
                                                : QStringLiteral("system"))
          .toString();
  if (const Theme theme = theme_from_name(chosen); theme != Theme::kSystem)
    set_theme(theme);
  else if (auto* a = findChild<QAction*>(QStringLiteral("actionTheme_system")))
    a->setChecked(true);
  plot_->set_metric(
      s.value(QStringLiteral("plot/metric"), QString::fromLatin1(metric::kLoss)).toString());
  // Auto (the default) chooses α from the shown runs' length; a saved number is the user's own.
  // A new key: the old one held the paper's 0.001 as everyone's default.
  if (const double a = s.value(QStringLiteral("plot/smoothing_alpha"), 0.0).toDouble(); a > 0)
    plot_->set_alpha(a);
  else
    plot_->set_auto_alpha(true);
  plot_->set_x_axis(XAxis(s.value(QStringLiteral("plot/xaxis"), 0).toInt()));
  plot_->set_log_y(s.value(QStringLiteral("plot/logy"), false).toBool());
  manager_->set_stop_timeout(s.value(QStringLiteral("runs/stop_timeout_ms"), 60000).toInt());
  manager_->set_max_per_device(s.value(QStringLiteral("runs/per_device"), 1).toInt());
}

void MainWindow::save_settings() {
  QSettings s;
  s.setValue(QStringLiteral("window/geometry"), saveGeometry());
  s.setValue(QStringLiteral("window/state"), saveState());
  s.setValue(QStringLiteral("window/splitter"), splitter_->saveState());
  s.setValue(QStringLiteral("window/table"), table_->horizontalHeader()->saveState());
  s.setValue(QStringLiteral("plot/metric"), plot_->metric());
  s.setValue(QStringLiteral("plot/smoothing_alpha"), plot_->auto_alpha() ? 0.0 : plot_->alpha());
  s.setValue(QStringLiteral("plot/xaxis"), int(plot_->x_axis()));
}

QString MainWindow::close_question() const {
  const int active = manager_->active_count();
  const int queued =
      int(std::count_if(manager_->jobs().begin(), manager_->jobs().end(),
                        [](const RunJob& j) { return j.state == RunState::kQueued; }));
  if (active == 0 && queued == 0) return {};
  // Queued runs are rows in the database whatever the answer: nothing starts them after this,
  // and the next studio to open the database queues them again.
  return (active == 1 ? tr("1 run training") : tr("%1 runs training").arg(active)) +
         tr(", %1 queued. ").arg(queued) +
         tr("Stop the training ones (each checkpoints first) or leave them running? Left runs "
            "keep writing to the database; queued runs stay queued in it, and the studio starts "
            "them the next time it opens the database.");
}

void MainWindow::closeEvent(QCloseEvent* event) {
  save_settings();
  const QString question = close_question();
  if (question.isEmpty()) {
    event->accept();
    return;
  }
  QMessageBox box(QMessageBox::Question, tr("Runs are training"), question, QMessageBox::NoButton,
                  this);
  QPushButton* stop = box.addButton(tr("Stop them"), QMessageBox::DestructiveRole);
  QPushButton* leave = box.addButton(tr("Leave running"), QMessageBox::AcceptRole);
  box.addButton(QMessageBox::Cancel);
  if (!quiet_) {
    box.exec();
    if (box.clickedButton() != stop && box.clickedButton() != leave) {
      event->ignore();
      return;
    }
  }
  manager_->set_paused(true);  // a stopping run must not start the next one in line
  if (!quiet_ && box.clickedButton() == leave) {
    manager_->detach_all();
    event->accept();
    return;
  }
  std::vector<int> keys;
  for (const RunJob& j : manager_->jobs())
    if (is_active(j.state)) keys.push_back(j.key);
  for (int k : keys) manager_->stop(k);
  // Wait for the checkpoints (the manager kills after its timeout), keeping the UI painted.
  QElapsedTimer t;
  t.start();
  statusBar()->showMessage(tr("Stopping runs…"));
  while (manager_->active_count() > 0 && t.elapsed() < 120000)
    QApplication::processEvents(QEventLoop::AllEvents, 50);
  event->accept();
}

}  // namespace mmlab::ui
