// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/notes_panel.h"

#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <algorithm>

namespace mmlab::ui {

NotesPanel::NotesPanel(ResultsSession& session, QWidget* parent)
    : QWidget(parent), session_(session) {
  auto* form = new QFormLayout(this);
  notes_title_ = new QLabel(tr("Select one run."), this);
  tags_edit_ = new QLineEdit(this);
  tags_edit_->setPlaceholderText(tr("comma-separated tags, Enter to save"));
  note_edit_ = new QPlainTextEdit(this);
  auto* save = new QPushButton(tr("Save note"), this);
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
        Q_EMIT message(tr("Tags"), err);
  });
  connect(save, &QPushButton::clicked, this, [this] {
    QString err;
    if (notes_run_ >= 0 && !session_.set_note(notes_run_, note_edit_->toPlainText(), &err))
      Q_EMIT message(tr("Note"), err);
    else
      Q_EMIT status(tr("Note saved."));
  });
  // A run deleted (or another database opened) under the panel.
  connect(&session_, &ResultsSession::runsChanged, this, [this] {
    if (notes_run_ >= 0 && !session_.run(notes_run_)) show_run(-1);
  });
}

void NotesPanel::set_runs(const std::vector<int64_t>& ids) {
  show_run(ids.size() == 1 ? ids.front() : -1);
}

void NotesPanel::show_run(int64_t id) {
  notes_run_ = id;
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
                            .arg(run_label(*r).toHtmlEscaped(),
                                 QString::fromStdString(r->error_text).toHtmlEscaped()));
  QStringList t;
  for (const auto& s : r->tags) t << QString::fromStdString(s);
  tags_edit_->setText(t.join(QStringLiteral(", ")));
  note_edit_->setPlainText(session_.note(r->id));
}

}  // namespace mmlab::ui
