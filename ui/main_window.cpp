// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/main_window.h"

#include <signal.h>

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProcess>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>
#include <optional>
#include <set>

#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/queue/experiment_queue.h"
#include "core/remote/ssh_runs.h"
#include "core/results/speedup.h"
#include "core/util/fs.h"
#include "ui/config_diff.h"
#include "ui/experiment_dialog.h"
#include "ui/expert_heatmap.h"
#include "ui/hosts_dialog.h"
#include "ui/point_prefetcher.h"
#include "ui/qcp.h"
#include "ui/remote_watch.h"

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

QString label_of(const store::RunRow& r) {
  return QStringLiteral("%1 #%2").arg(QString::fromStdString(r.name)).arg(r.id);
}

}  // namespace

MainWindow::MainWindow(const QString& db_path, QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("MoE-Mamba Studio"));
  setWindowIcon(QIcon(QStringLiteral(":/mmlab/icons/mmlab-studio.svg")));
  manager_ = new RunManager(RunManager::default_program(), this);
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
    update_compare();
    update_heatmap();
  });

  splitter_ = new QSplitter(Qt::Horizontal, this);
  splitter_->addWidget(build_browser());
  tabs_ = new QTabWidget(this);
  plot_ = new CurvePlot(&curves_, this);
  tabs_->addTab(plot_, tr("Curves"));
  tabs_->addTab(build_compare(), tr("Compare"));
  heatmap_ = new ExpertHeatmap(&curves_, this);
  tabs_->addTab(heatmap_, tr("Experts"));
  tabs_->addTab(build_queue(), tr("Queue"));
  tabs_->addTab(build_notes(), tr("Tags && notes"));
  tabs_->addTab(build_samples(), tr("Samples"));
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
  connect(manager_, &RunManager::jobAdded, this, &MainWindow::update_queue);
  connect(manager_, &RunManager::jobRemoved, this, &MainWindow::update_queue);
  connect(manager_, &RunManager::eventsReceived, this, &MainWindow::on_events);
  connect(plot_, &CurvePlot::metricChanged, this, [this] { update_compare(); });

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
    poll_gpu();
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

  QMenu* settings = menuBar()->addMenu(tr("&Settings"));
  settings->addAction(tr("&Hosts…"), this, [this] { HostsDialog(this).exec(); });

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

QWidget* MainWindow::build_compare() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  compare_hint_ = new QLabel(w);
  compare_hint_->setObjectName(QStringLiteral("compareHint"));
  compare_hint_->setText(
      tr("Select two or more runs in the browser (Ctrl+click, Shift+click) to compare their "
         "curves, configs and speedups."));
  v->addWidget(compare_hint_);
  auto* split = new QSplitter(Qt::Vertical, w);
  compare_plot_ = new CurvePlot(&curves_, w);
  compare_plot_->set_metric(QStringLiteral("loss_smooth"));
  compare_plot_->set_alpha(1.0);  // loss_smooth is smoothed by the trainer already
  split->addWidget(compare_plot_);
  auto* lower = new QWidget(w);
  auto* lv = new QVBoxLayout(lower);
  lv->setContentsMargins(0, 0, 0, 0);
  auto* row = new QHBoxLayout;
  row->addWidget(new QLabel(tr("<b>Config diff</b>"), lower));
  only_diff_ = new QCheckBox(tr("only differences"), lower);
  only_diff_->setChecked(true);
  row->addWidget(only_diff_);
  row->addStretch(1);
  lv->addLayout(row);
  auto* tables = new QSplitter(Qt::Horizontal, lower);
  diff_table_ = new QTableWidget(tables);
  diff_table_->setObjectName(QStringLiteral("diffTable"));
  diff_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  diff_table_->verticalHeader()->setDefaultSectionSize(diff_table_->fontMetrics().height() + 4);
  auto* speedups = new QWidget(tables);
  auto* sv = new QVBoxLayout(speedups);
  sv->setContentsMargins(0, 0, 0, 0);
  auto* baseline_row = new QHBoxLayout;
  baseline_row->addWidget(new QLabel(tr("<b>Speedup</b> against"), speedups));
  baseline_ = new QComboBox(speedups);
  baseline_->setObjectName(QStringLiteral("baselineCombo"));
  baseline_->setToolTip(tr("The baseline run: the others are measured against its final loss."));
  baseline_row->addWidget(baseline_, 1);
  sv->addLayout(baseline_row);
  speedup_table_ = new QTableWidget(0, 3, speedups);
  speedup_table_->setObjectName(QStringLiteral("speedupTable"));
  speedup_table_->setHorizontalHeaderLabels({tr("Run"), tr("Tokens to target"), tr("Speedup")});
  speedup_table_->setToolTip(
      tr("The paper's measure: the tokens each run needs to first reach the baseline's final "
         "smoothed loss (the target), and the tokens the baseline needed divided by that."));
  speedup_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  speedup_table_->verticalHeader()->hide();
  speedup_table_->horizontalHeader()->setStretchLastSection(true);
  sv->addWidget(speedup_table_, 1);
  connect(baseline_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int index) {
    if (index < 0) return;
    baseline_run_ = baseline_->itemData(index).toLongLong();
    update_compare();
  });
  tables->addWidget(diff_table_);
  tables->addWidget(speedups);
  tables->setStretchFactor(0, 2);
  lv->addWidget(tables, 1);
  split->addWidget(lower);
  v->addWidget(split);
  connect(only_diff_, &QCheckBox::toggled, this, &MainWindow::update_compare);
  return w;
}

QWidget* MainWindow::build_queue() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  queue_hint_ = new QLabel(
      tr("Nothing queued. Launch an experiment with File ▸ New experiment (Ctrl+N) or Run ▸ "
         "Launch quick comparison; runs started elsewhere show up in the browser."),
      w);
  queue_hint_->setObjectName(QStringLiteral("queueHint"));
  queue_hint_->setWordWrap(true);
  v->addWidget(queue_hint_);
  queue_table_ = new QTableWidget(0, 6, w);
  queue_table_->setObjectName(QStringLiteral("queueTable"));
  queue_table_->setHorizontalHeaderLabels(
      {tr("Run"), tr("Device"), tr("State"), tr("Progress"), tr("ETA"), tr("Message")});
  queue_table_->horizontalHeader()->setStretchLastSection(true);
  queue_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  queue_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  queue_table_->verticalHeader()->hide();
  v->addWidget(queue_table_, 1);
  auto* buttons = new QHBoxLayout;
  auto add = [&](const QString& text, auto fn) {
    auto* b = new QPushButton(text, w);
    buttons->addWidget(b);
    connect(b, &QPushButton::clicked, this, [this, fn] {
      for (int key : selected_jobs()) fn(key);
      update_queue();
    });
  };
  add(tr("Stop"), [this](int k) { manager_->stop(k); });
  add(tr("Resume"), [this](int k) { manager_->resume(k); });
  add(tr("Retry"), [this](int k) { manager_->retry(k); });
  add(tr("Remove"), [this](int k) {
    if (const RunJob* j = manager_->job(k); j && j->state == RunState::kQueued && j->run_id >= 0)
      session_.cancel_queued_run(j->run_id, tr("Taken off the queue before it started."));
    manager_->remove(k);
  });
  add(tr("Move up"), [this](int k) { manager_->move(k, -1); });
  add(tr("Move down"), [this](int k) { manager_->move(k, +1); });
  buttons->addStretch(1);
  v->addLayout(buttons);
  return w;
}

QWidget* MainWindow::build_notes() {
  auto* w = new QWidget(this);
  auto* form = new QFormLayout(w);
  notes_title_ = new QLabel(tr("Select one run."), w);
  tags_edit_ = new QLineEdit(w);
  tags_edit_->setPlaceholderText(tr("comma-separated tags, Enter to save"));
  note_edit_ = new QPlainTextEdit(w);
  auto* save = new QPushButton(tr("Save note"), w);
  form->addRow(notes_title_);
  form->addRow(tr("Tags"), tags_edit_);
  form->addRow(tr("Note"), note_edit_);
  form->addRow(save);
  connect(tags_edit_, &QLineEdit::returnPressed, this, [this] {
    const store::RunRow* r = session_.run(notes_run_);
    if (!r) return;
    QStringList wanted;
    for (const QString& t : tags_edit_->text().split(QLatin1Char(','), Qt::SkipEmptyParts))
      if (!t.trimmed().isEmpty()) wanted << t.trimmed();
    const std::vector<std::string> had = r->tags;  // copy: the calls below refresh the rows
    const int64_t id = notes_run_;
    QString err;
    for (const std::string& t : had)
      if (!wanted.contains(QString::fromStdString(t)))
        session_.remove_tag(id, QString::fromStdString(t), &err);
    for (const QString& t : wanted)
      if (std::find(had.begin(), had.end(), t.toStdString()) == had.end() &&
          !session_.add_tag(id, t, &err))
        show_message(tr("Tags"), err);
  });
  connect(save, &QPushButton::clicked, this, [this] {
    QString err;
    if (notes_run_ >= 0 && !session_.set_note(notes_run_, note_edit_->toPlainText(), &err))
      show_message(tr("Note"), err);
    else
      statusBar()->showMessage(tr("Note saved."), 3000);
  });
  return w;
}

QWidget* MainWindow::build_samples() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  auto* row = new QHBoxLayout;
  prompt_ = new QLineEdit(QStringLiteral("The history of"), w);
  sample_tokens_ = new QSpinBox(w);
  sample_tokens_->setRange(1, 2048);
  sample_tokens_->setValue(64);
  auto* go = new QPushButton(tr("Generate for selected runs"), w);
  row->addWidget(new QLabel(tr("Prompt"), w));
  row->addWidget(prompt_, 1);
  row->addWidget(new QLabel(tr("tokens"), w));
  row->addWidget(sample_tokens_);
  row->addWidget(go);
  v->addLayout(row);
  samples_row_ = new QHBoxLayout;
  v->addLayout(samples_row_, 1);
  connect(go, &QPushButton::clicked, this, &MainWindow::generate_samples);
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
  setWindowTitle(tr("%1 — MoE-Mamba Studio").arg(QFileInfo(session_.path()).fileName()));
  restore_queue();
  update_status();
  return true;
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
  // The trainer reads the experiment from a file: keep it next to the database, so the runs can
  // be reproduced (and resumed) from exactly what was launched.
  const QDir dir(experiments_dir_for(session_.path()));
  if (!dir.mkpath(QStringLiteral("."))) {
    if (error) *error = tr("Could not create %1: check its permissions.").arg(dir.path());
    return 0;
  }
  const QString file = dir.filePath(
      QStringLiteral("%1-%2.json")
          .arg(QString::fromStdString(ex.name).replace(QLatin1Char('/'), QLatin1Char('_')),
               QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss-zzz"))));
  QFile f(file);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
      f.write(QByteArray::fromStdString(doc.dump(2))) < 0 || !f.flush()) {
    if (error) *error = tr("Could not write %1: %2.").arg(file, f.errorString());
    QFile::remove(file);
    return 0;
  }
  f.close();
  if (target != QLatin1String("local")) {
    use_host_queue(target);
    for (const RunConfig& rc : ex.runs) {
      // The child is `mmlab remote … --follow`: it starts the trainer on the host, prints its
      // event stream like a local trainer, turns our SIGTERM into a remote stop and syncs the
      // run's rows into this database. One queue per host.
      manager_->enqueue(QString::fromStdString(rc.name), RunManager::host_queue(target),
                        {QStringLiteral("remote"), QStringLiteral("--db"), session_.path(),
                         QStringLiteral("launch"), target, file, QStringLiteral("--run"),
                         QString::fromStdString(rc.name), QStringLiteral("--follow")},
                        session_.path());
    }
    tabs_->setCurrentWidget(plot_);
    statusBar()->showMessage(tr("Queued %1 run(s) of %2 on %3.")
                                 .arg(ex.runs.size())
                                 .arg(QString::fromStdString(ex.name), target),
                             8000);
    return static_cast<int>(ex.runs.size());
  }
  // Every run's row first (queued): closing the studio or a crash never loses the runs that
  // have not started, and launching an experiment that is already there continues it.
  queue::LaunchPlan plan;
  if (!session_.queue_experiment(ex, ex.runs, &plan, error)) {
    QFile::remove(file);
    return 0;
  }
  int queued = 0;
  for (const queue::QueuedRun& q : plan.runs) {
    const QString name = QString::fromStdString(q.name);
    const QString device = QString::fromStdString(q.device);
    if (q.action == queue::RunAction::kStart) {
      manager_->enqueue_train(file, name, session_.path(), device, q.run_id, ranks);
    } else if (q.action == queue::RunAction::kResume) {
      // A run of the experiment that trained on a host continues there.
      const store::RunRow* row = session_.run(q.run_id);
      if (row && model_->unreachable(*row)) continue;  // nothing to do until its host is back
      if (!row || !resume_on_its_host(*row))
        manager_->enqueue_resume(q.run_id, name, session_.path(), device, ranks);
    } else {
      continue;
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
  tabs_->setCurrentWidget(plot_);
  statusBar()->showMessage(
      plan.continuing
          ? QString::fromStdString(plan.summary(session_.path().toStdString()))
          : tr("Queued %1 run(s) of %2.").arg(queued).arg(QString::fromStdString(ex.name)),
      8000);
  return queued;
}

void MainWindow::restore_queue() {
  std::set<int64_t> known;
  for (const RunJob& j : manager_->jobs())
    if (j.run_id >= 0) known.insert(j.run_id);
  int restored = 0;
  for (const store::RunRow& r : session_.runs()) {
    if (r.status != store::RunStatus::kQueued || known.count(r.id)) continue;
    QString device = QStringLiteral("cpu");
    try {
      device = QString::fromStdString(
          json::parse(r.config_json).value("train", json::object()).value("device", "cpu"));
    } catch (const std::exception&) {
    }
    // `--resume` of a queued run starts it from its stored config (no experiment file needed).
    manager_->enqueue_resume(r.id, QString::fromStdString(r.name), session_.path(), device);
    ++restored;
  }
  if (restored > 0)
    statusBar()->showMessage(tr("Restored %n queued run(s) from the database.", nullptr, restored),
                             8000);
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

std::vector<int> MainWindow::selected_jobs() const {
  std::vector<int> keys;
  for (const QModelIndex& i : queue_table_->selectionModel()->selectedRows())
    keys.push_back(queue_table_->item(i.row(), 0)->data(Qt::UserRole).toInt());
  return keys;
}

void MainWindow::stop_selected() {
  const auto ids = selected_runs();
  for (const RunJob& j : manager_->jobs())
    if (std::find(ids.begin(), ids.end(), j.run_id) != ids.end()) manager_->stop(j.key);
  for (int k : selected_jobs()) manager_->stop(k);
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

void MainWindow::use_host_queue(const QString& host) {
  // An SSH host trains one run at a time; a Slurm cluster takes every job at once and queues
  // them itself.
  try {
    const auto hosts = remote::HostList::load(remote::default_hosts_path());
    if (hosts.get(host.toStdString()).kind == remote::HostKind::kSlurm)
      manager_->set_concurrent(RunManager::host_queue(host));
  } catch (const std::exception&) {
    // An unknown host or a damaged hosts file: its job says so when it starts.
  }
}

QString MainWindow::remote_host_of(const store::RunRow& run) const {
  try {
    auto book = remote::LaunchBook::load(session_.path().toStdString());
    if (const remote::Launch* l = book.find(run.uuid)) return QString::fromStdString(l->host);
  } catch (const std::exception&) {
    // A damaged list of remote runs: treat the run as local (`mmlab remote` names the file).
  }
  return {};
}

bool MainWindow::resume_on_its_host(const store::RunRow& r) {
  const QString host = remote_host_of(r);
  if (host.isEmpty()) return false;
  if (model_->unreachable(r)) {
    // It may still be training there; what it is becomes known when its host answers again.
    statusBar()->showMessage(
        tr("%1: its host cannot be reached now; resume it once it is back.").arg(label_of(r)),
        8000);
    return true;
  }
  // A run that trained on a host resumes there, followed as it was launched.
  use_host_queue(host);
  manager_->enqueue(
      QString::fromStdString(r.name), RunManager::host_queue(host),
      {QStringLiteral("remote"), QStringLiteral("--db"), session_.path(), QStringLiteral("resume"),
       QString::fromStdString(r.uuid), QStringLiteral("--follow")},
      session_.path(), r.id);
  return true;
}

void MainWindow::resume_selected() {
  for (int64_t id : selected_runs()) {
    const store::RunRow* r = session_.run(id);
    if (!r || r->status == store::RunStatus::kFinished ||
        r->effective_status == store::RunStatus::kRunning)
      continue;
    if (resume_on_its_host(*r)) continue;
    QString device = QStringLiteral("cpu");
    try {
      device = QString::fromStdString(
          json::parse(r->config_json).value("train", json::object()).value("device", "cpu"));
    } catch (const std::exception&) {
    }
    manager_->enqueue_resume(id, QString::fromStdString(r->name), session_.path(), device);
  }
}

void MainWindow::generate_samples() {
  while (QLayoutItem* it = samples_row_->takeAt(0)) {
    delete it->widget();
    delete it;
  }
  for (int64_t id : selected_runs()) {
    const store::RunRow* r = session_.run(id);
    if (!r) continue;
    auto* box = new QPlainTextEdit(this);
    box->setReadOnly(true);
    box->setPlaceholderText(tr("%1: generating…").arg(label_of(*r)));
    samples_row_->addWidget(box);
    auto* p = new QProcess(box);  // dies with its box
    connect(p, &QProcess::finished, box, [box, p, name = label_of(*r)](int code) {
      const QString out = QString::fromUtf8(p->readAllStandardOutput());
      const QString err = QString::fromUtf8(p->readAllStandardError()).trimmed();
      box->setPlainText(QStringLiteral("[%1]\n").arg(name) +
                        (code == 0 ? out : QObject::tr("failed (exit %1): %2").arg(code).arg(err)));
    });
    connect(p, &QProcess::errorOccurred, box, [box, p](QProcess::ProcessError e) {
      if (e == QProcess::FailedToStart)
        box->setPlainText(
            QObject::tr("Could not start %1: %2").arg(p->program(), p->errorString()));
    });
    p->start(manager_->program(),
             {QStringLiteral("generate"), QString::number(id), QStringLiteral("--db"),
              session_.path(), QStringLiteral("--prompt"), prompt_->text(),
              QStringLiteral("--tokens"), QString::number(sample_tokens_->value())});
  }
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
    rc.label = label_of(r);
    rc.group = group_of(r);
    rc.total_steps = r.total_steps;
    // The wall-clock axis places points at started_at + wall (approximate for resumed runs,
    // whose wall is training time summed over sessions; see CurveSet::x_of).
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
  if (notes_run_ >= 0 && !session_.run(notes_run_)) update_notes();
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
  update_compare();
  update_notes();
  update_heatmap();
  delete_action_->setEnabled(!selected_runs().empty());
}

void MainWindow::update_compare() {
  const auto ids = selected_runs();
  compare_plot_->set_runs(ids);
  std::vector<json> configs;
  QStringList headers;
  for (int64_t id : ids) {
    const store::RunRow* r = session_.run(id);
    if (!r) continue;
    try {
      configs.push_back(json::parse(r->config_json));
    } catch (const std::exception&) {
      configs.push_back(json::object());
    }
    headers << label_of(*r);
  }
  const auto rows = diff_configs(configs, only_diff_->isChecked());
  diff_table_->clear();
  diff_table_->setColumnCount(int(configs.size()));
  diff_table_->setRowCount(int(rows.size()));
  diff_table_->setHorizontalHeaderLabels(headers);
  QStringList keys;
  for (size_t i = 0; i < rows.size(); ++i) {
    keys << QString::fromStdString(rows[i].key);
    for (size_t c = 0; c < rows[i].values.size(); ++c) {
      auto* item = new QTableWidgetItem(QString::fromStdString(rows[i].values[c]));
      if (rows[i].differs) item->setBackground(QColor(255, 200, 80, 70));
      diff_table_->setItem(int(i), int(c), item);
    }
  }
  diff_table_->setVerticalHeaderLabels(keys);
  diff_table_->resizeColumnsToContents();

  compare_hint_->setVisible(ids.size() < 2);
  // The paper's speedup (core/results/speedup.h) against the chosen baseline, else the first
  // selected run.
  speedup_table_->setRowCount(0);
  const bool kept = std::find(ids.begin(), ids.end(), baseline_run_) != ids.end();
  const int64_t base_id = kept ? baseline_run_ : (ids.empty() ? -1 : ids.front());
  {
    const QSignalBlocker quiet(baseline_);
    baseline_->clear();
    for (int64_t id : ids) {
      const RunCurves* rc = curves_.find(id);
      baseline_->addItem(rc ? rc->label : QString::number(id), QVariant::fromValue<qlonglong>(id));
      if (id == base_id) baseline_->setCurrentIndex(baseline_->count() - 1);
    }
  }
  baseline_->setEnabled(ids.size() >= 2);
  if (ids.size() < 2) return;
  const Series& base_series = curves_.series(base_id, "loss_smooth");
  const LossCurve base{base_series.tokens, base_series.value};
  const std::optional<double> target = final_value(base);
  if (!target) return;
  speedup_table_->setRowCount(int(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    const Series& s = curves_.series(ids[i], "loss_smooth");
    const LossCurve curve{s.tokens, s.value};
    const std::optional<double> reached = tokens_to_reach(curve, *target);
    const std::optional<double> times = speedup(base, curve);
    const RunCurves* rc = curves_.find(ids[i]);
    const QString label = rc ? rc->label : QString();
    speedup_table_->setItem(
        int(i), 0,
        new QTableWidgetItem(ids[i] == base_id ? tr("%1 (baseline)").arg(label) : label));
    speedup_table_->setItem(
        int(i), 1,
        new QTableWidgetItem(reached ? RunTableModel::human_count(*reached) : tr("not reached")));
    speedup_table_->setItem(
        int(i), 2,
        new QTableWidgetItem(times ? QStringLiteral("%1×").arg(*times, 0, 'f', 2)
                                   : QStringLiteral("—")));
  }
}

void MainWindow::update_heatmap() {
  // The first selected run that has expert-load curves (a MoE run), else the first selected.
  const auto ids = selected_runs();
  if (ids.empty()) return;
  for (int64_t id : ids) {
    const auto names = session_.metric_names(id);
    const bool moe = std::any_of(names.begin(), names.end(), [](const std::string& n) {
      return n.rfind("expert_load/", 0) == 0;
    });
    if (moe || id == ids.back()) {
      const store::RunRow* r = session_.run(id);
      heatmap_->set_run(id, r ? label_of(*r) : QString::number(id), names);
      return;
    }
  }
}

void MainWindow::update_notes() {
  const auto ids = selected_runs();
  notes_run_ = ids.size() == 1 ? ids.front() : -1;
  const store::RunRow* r = session_.run(notes_run_);
  tags_edit_->setEnabled(r != nullptr);
  note_edit_->setEnabled(r != nullptr);
  if (!r) {
    notes_title_->setText(tr("Select one run."));
    tags_edit_->clear();
    note_edit_->clear();
    return;
  }
  notes_title_->setText(tr("<b>%1</b> — %2")
                            .arg(label_of(*r).toHtmlEscaped(),
                                 QString::fromStdString(r->error_text).toHtmlEscaped()));
  QStringList t;
  for (const auto& s : r->tags) t << QString::fromStdString(s);
  tags_edit_->setText(t.join(QStringLiteral(", ")));
  note_edit_->setPlainText(session_.note(r->id));
}

void MainWindow::on_job_changed(int key) {
  const RunJob* j = manager_->job(key);
  // Stopped before it ever started (the user took it off the queue): its row stops being
  // queued too, or the next start of the studio would queue it again.
  if (j && j->state == RunState::kStopped && j->attempts == 0 && j->run_id >= 0)
    session_.cancel_queued_run(j->run_id, tr("Taken off the queue before it started."));
  // A launch that failed before its trainer took the run (no trainer binary, a usage error):
  // the run keeps its row, failed with the sentence, instead of waiting queued without a word.
  // (A trainer that took it stores its own failure; the row is then no longer queued.)
  if (j && j->state == RunState::kFailed && j->run_id >= 0 && !j->message.isEmpty())
    session_.cancel_queued_run(j->run_id, j->message, store::RunStatus::kFailed);
  if (j && j->run_id >= 0 && !session_.run(j->run_id)) session_.refresh();  // a new run row
  if (j && is_done(j->state)) {
    session_.refresh();
    if (j->state == RunState::kFailed)
      statusBar()->showMessage(tr("%1 failed: %2").arg(j->name, j->message), 15000);
  }
  update_queue();
  update_plot_runs();
  update_status();
}

void MainWindow::on_events(int, const std::vector<ProgressEvent>& events) {
  curves_.apply(events);
}

void MainWindow::update_queue() {
  const auto keep = selected_jobs();
  const auto& jobs = manager_->jobs();
  queue_hint_->setVisible(jobs.empty());
  queue_table_->setRowCount(int(jobs.size()));
  for (size_t i = 0; i < jobs.size(); ++i) {
    const RunJob& j = jobs[i];
    auto* name = new QTableWidgetItem(
        j.run_id >= 0 ? QStringLiteral("%1 #%2").arg(j.name).arg(j.run_id) : j.name);
    name->setData(Qt::UserRole, j.key);
    queue_table_->setItem(int(i), 0, name);
    queue_table_->setItem(int(i), 1, new QTableWidgetItem(j.device));
    queue_table_->setItem(int(i), 2, new QTableWidgetItem(to_string(j.state)));
    auto* bar = qobject_cast<QProgressBar*>(queue_table_->cellWidget(int(i), 3));
    if (!bar) {
      bar = new QProgressBar(queue_table_);
      queue_table_->setCellWidget(int(i), 3, bar);
    }
    bar->setRange(0, 1000);
    bar->setValue(j.progress() < 0 ? 0 : int(j.progress() * 1000));
    bar->setFormat(j.total_steps > 0 ? QStringLiteral("%1 / %2").arg(j.step).arg(j.total_steps)
                                     : QString());
    const double eta = j.eta_seconds();
    queue_table_->setItem(
        int(i), 4,
        new QTableWidgetItem(is_active(j.state) && eta >= 0 ? RunTableModel::human_duration(eta)
                                                            : QString()));
    queue_table_->setItem(int(i), 5,
                          new QTableWidgetItem(j.message.isEmpty() ? j.note : j.message));
    if (std::find(keep.begin(), keep.end(), j.key) != keep.end()) queue_table_->selectRow(int(i));
  }
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
  const QStringList gpus = cuda_devices();
  status_device_->setText(gpus.isEmpty() ? tr("CPU only")
                                         : tr("%1 GPU(s) %2").arg(gpus.size()).arg(gpu_text_));
}

void MainWindow::poll_gpu() {
  static int tick = 0;
  if (cuda_devices().isEmpty() || (tick++ % 5) != 0) return;  // every 5 s, only with a GPU
  auto* p = new QProcess(this);
  connect(p, &QProcess::finished, this, [this, p] {
    // "used, total" MiB per GPU, one line each.
    QStringList parts;
    for (const QString& line : QString::fromUtf8(p->readAllStandardOutput())
                                   .split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
      const QStringList f = line.split(QLatin1Char(','));
      if (f.size() == 2)
        parts << QStringLiteral("%1/%2 GiB")
                     .arg(f[0].trimmed().toDouble() / 1024, 0, 'f', 1)
                     .arg(f[1].trimmed().toDouble() / 1024, 0, 'f', 0);
    }
    gpu_text_ = parts.join(QStringLiteral(", "));
    p->deleteLater();
    update_status();
  });
  connect(p, &QProcess::errorOccurred, p, &QObject::deleteLater);
  p->start(QStringLiteral("nvidia-smi"), {QStringLiteral("--query-gpu=memory.used,memory.total"),
                                          QStringLiteral("--format=csv,noheader,nounits")});
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
  plot_->set_metric(s.value(QStringLiteral("plot/metric"), QStringLiteral("loss")).toString());
  // Auto (the default) chooses α from the shown runs' length; a saved number is the user's own.
  // A new key: the old one held the paper's 0.001 as everyone's default.
  if (const double a = s.value(QStringLiteral("plot/smoothing_alpha"), 0.0).toDouble(); a > 0)
    plot_->set_alpha(a);
  else
    plot_->set_auto_alpha(true);
  plot_->set_x_axis(XAxis(s.value(QStringLiteral("plot/xaxis"), 0).toInt()));
  plot_->set_log_y(s.value(QStringLiteral("plot/logy"), false).toBool());
  manager_->set_stop_timeout(s.value(QStringLiteral("runs/stop_timeout_ms"), 60000).toInt());
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
