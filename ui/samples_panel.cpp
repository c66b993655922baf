// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/samples_panel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QLayoutItem>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QProcess>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace mmlab::ui {

SamplesPanel::SamplesPanel(ResultsSession& session, std::function<QString()> program,
                           QWidget* parent)
    : QWidget(parent), session_(session), program_(std::move(program)) {
  auto* v = new QVBoxLayout(this);
  auto* row = new QHBoxLayout;
  prompt_ = new QLineEdit(QStringLiteral("The history of"), this);
  sample_tokens_ = new QSpinBox(this);
  sample_tokens_->setRange(1, 2048);
  sample_tokens_->setValue(64);
  auto* go = new QPushButton(tr("Generate for selected runs"), this);
  row->addWidget(new QLabel(tr("Prompt"), this));
  row->addWidget(prompt_, 1);
  row->addWidget(new QLabel(tr("tokens"), this));
  row->addWidget(sample_tokens_);
  row->addWidget(go);
  v->addLayout(row);
  samples_row_ = new QHBoxLayout;
  v->addLayout(samples_row_, 1);
  connect(go, &QPushButton::clicked, this, &SamplesPanel::generate);
}

void SamplesPanel::set_runs(const std::vector<int64_t>& ids) {
  runs_ = ids;
}

void SamplesPanel::generate() {
  while (QLayoutItem* it = samples_row_->takeAt(0)) {
    delete it->widget();
    delete it;
  }
  for (int64_t id : runs_) {
    const store::RunRow* r = session_.run(id);
    if (!r) continue;
    auto* box = new QPlainTextEdit(this);
    box->setReadOnly(true);
    box->setPlaceholderText(tr("%1: generating…").arg(run_label(*r)));
    samples_row_->addWidget(box);
    auto* p = new QProcess(box);  // dies with its box
    connect(p, &QProcess::finished, box, [box, p, name = run_label(*r)](int code) {
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
    p->start(program_(), {QStringLiteral("generate"), QString::number(id), QStringLiteral("--db"),
                          session_.path(), QStringLiteral("--prompt"), prompt_->text(),
                          QStringLiteral("--tokens"), QString::number(sample_tokens_->value())});
  }
}

}  // namespace mmlab::ui
