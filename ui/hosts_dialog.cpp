// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/hosts_dialog.h"

#include <QApplication>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/remote/ssh_runs.h"
#include "core/util/error.h"

namespace mmlab::ui {

namespace {

QString q(const std::string& s) {
  return QString::fromStdString(s);
}

}  // namespace

HostsDialog::HostsDialog(QWidget* parent, std::filesystem::path path)
    : QDialog(parent), path_(path.empty() ? remote::default_hosts_path() : std::move(path)) {
  setWindowTitle(tr("Hosts"));
  table_ = new QTableWidget(0, 4, this);
  table_->setObjectName(QStringLiteral("hosts"));
  table_->setHorizontalHeaderLabels({tr("Name"), tr("Target"), tr("Folder"), tr("mmlab")});
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  status_ = new QLabel(this);
  status_->setObjectName(QStringLiteral("status"));
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* add = new QPushButton(tr("Add…"), this);
  auto* remove = new QPushButton(tr("Remove"), this);
  auto* check = new QPushButton(tr("Check"), this);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(add);
  buttons->addWidget(remove);
  buttons->addWidget(check);
  buttons->addStretch(1);
  auto* close = new QDialogButtonBox(QDialogButtonBox::Close, this);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(new QLabel(tr("Where runs train. SSH uses your own ssh (keys, agent, "
                                  "~/.ssh/config); no password is stored. File: %1")
                                   .arg(q(path_.string())),
                               this));
  layout->addWidget(table_, 1);
  layout->addLayout(buttons);
  layout->addWidget(status_);
  layout->addWidget(close);
  connect(close, &QDialogButtonBox::rejected, this, &QDialog::accept);
  connect(add, &QPushButton::clicked, this, &HostsDialog::add_from_form);
  auto selected = [this] {
    const int row = table_->currentRow();
    return row < 0 ? QString() : table_->item(row, 0)->text();
  };
  connect(remove, &QPushButton::clicked, this, [this, selected] {
    QString err;
    if (!selected().isEmpty() && !remove_host(selected(), &err)) status_->setText(err);
  });
  connect(check, &QPushButton::clicked, this, [this, selected] {
    if (!selected().isEmpty()) check_host(selected());
  });
  reload();
}

void HostsDialog::reload() {
  try {
    hosts_ = remote::HostList::load(path_);
  } catch (const UserError& e) {
    status_->setText(q(e.what()));
  }
  table_->setRowCount(0);
  for (const auto& h : hosts_.hosts()) {
    const int row = table_->rowCount();
    table_->insertRow(row);
    const QStringList cells = {q(h.name), q(h.target()), q(h.dir),
                               h.kind == remote::HostKind::kLocal ? QString() : q(h.mmlab)};
    for (int c = 0; c < cells.size(); ++c) table_->setItem(row, c, new QTableWidgetItem(cells[c]));
  }
}

bool HostsDialog::add_host(const remote::Host& host, QString* error) {
  try {
    hosts_.add(host);
    hosts_.save();
  } catch (const UserError& e) {
    if (error) *error = q(e.what());
    reload();  // the file is unchanged: show what it holds
    return false;
  }
  reload();
  return true;
}

bool HostsDialog::remove_host(const QString& name, QString* error) {
  try {
    hosts_.remove(name.toStdString());
    hosts_.save();
  } catch (const UserError& e) {
    if (error) *error = q(e.what());
    return false;
  }
  reload();
  return true;
}

QString HostsDialog::check_host(const QString& name) {
  QString text;
  try {
    QApplication::setOverrideCursor(Qt::WaitCursor);
    const remote::HostCheck c = remote::check_host(hosts_.get(name.toStdString()));
    QApplication::restoreOverrideCursor();
    text = c.ok ? tr("%1: ok%2")
                      .arg(name, c.version.empty()
                                     ? QString()
                                     : tr(" (mmlab %1, schema %2)").arg(q(c.version)).arg(c.schema))
                : q(c.problem);
  } catch (const UserError& e) {
    QApplication::restoreOverrideCursor();
    text = q(e.what());
  }
  status_->setText(text);
  return text;
}

void HostsDialog::add_from_form() {
  QDialog form(this);
  form.setWindowTitle(tr("Add host"));
  auto* layout = new QFormLayout(&form);
  auto* name = new QLineEdit(&form);
  auto* target = new QLineEdit(&form);
  target->setPlaceholderText(QStringLiteral("ssh://user@gpu-box  or  slurm://user@login-node"));
  auto* dir = new QLineEdit(&form);
  dir->setPlaceholderText(QStringLiteral("~/mmlab-runs"));
  auto* mmlab = new QLineEdit(QStringLiteral("mmlab"), &form);
  auto* ssh_config = new QLineEdit(&form);
  ssh_config->setPlaceholderText(tr("(your ~/.ssh/config)"));
  auto* partition = new QLineEdit(&form);
  auto* account = new QLineEdit(&form);
  auto* gpus = new QSpinBox(&form);
  gpus->setRange(0, 64);
  auto* tasks = new QSpinBox(&form);
  tasks->setRange(0, 1024);
  tasks->setToolTip(tr("CPU ranks per run when GPUs per run is 0 (data parallel over Gloo)"));
  auto* time_limit = new QLineEdit(&form);
  time_limit->setPlaceholderText(QStringLiteral("HH:MM:SS"));
  auto* sbatch = new QPlainTextEdit(&form);
  sbatch->setPlaceholderText(tr("extra #SBATCH options, one per line, e.g. --mem=32G"));
  layout->addRow(tr("Name"), name);
  layout->addRow(tr("Target"), target);
  layout->addRow(tr("Remote folder"), dir);
  layout->addRow(tr("mmlab there"), mmlab);
  layout->addRow(tr("ssh config"), ssh_config);
  layout->addRow(tr("Slurm partition"), partition);
  layout->addRow(tr("Slurm account"), account);
  layout->addRow(tr("GPUs per run"), gpus);
  layout->addRow(tr("CPU ranks per run"), tasks);
  layout->addRow(tr("Time limit"), time_limit);
  layout->addRow(tr("#SBATCH lines"), sbatch);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &form);
  layout->addRow(buttons);
  connect(buttons, &QDialogButtonBox::rejected, &form, &QDialog::reject);
  connect(buttons, &QDialogButtonBox::accepted, &form, [&] {
    remote::Host h;
    QString err;
    try {
      h.name = name->text().trimmed().toStdString();
      remote::parse_target(target->text().trimmed().toStdString(), h);
      h.dir = dir->text().trimmed().toStdString();
      h.mmlab = mmlab->text().trimmed().toStdString();
      h.ssh_config = ssh_config->text().trimmed().toStdString();
      h.partition = partition->text().trimmed().toStdString();
      h.account = account->text().trimmed().toStdString();
      h.gpus = gpus->value();
      h.tasks = tasks->value();
      h.time_limit = time_limit->text().trimmed().toStdString();
      for (const QString& l : sbatch->toPlainText().split(QLatin1Char('\n'), Qt::SkipEmptyParts))
        h.sbatch_lines.push_back(l.trimmed().toStdString());
    } catch (const UserError& e) {
      QMessageBox::warning(&form, tr("Add host"), q(e.what()));
      return;
    }
    if (!add_host(h, &err)) {
      QMessageBox::warning(&form, tr("Add host"), err);
      return;
    }
    form.accept();
  });
  form.exec();
}

}  // namespace mmlab::ui
