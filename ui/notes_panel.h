// SPDX-License-Identifier: GPL-3.0-or-later
// The Tags & notes tab: the comma-separated tags (Enter saves) and the free-text note of the one
// selected run, stored in the database through the session.
#pragma once

#include <QString>
#include <QWidget>
#include <cstdint>
#include <vector>

#include "ui/results_session.h"

class QLabel;
class QLineEdit;
class QPlainTextEdit;

namespace mmlab::ui {

class NotesPanel : public QWidget {
  Q_OBJECT

 public:
  explicit NotesPanel(ResultsSession& session, QWidget* parent = nullptr);
  /// The browser's selection: one run is edited here, any other number shows a hint.
  void set_runs(const std::vector<int64_t>& ids);

 Q_SIGNALS:
  /// A tag or note was refused (one sentence).
  void message(const QString& title, const QString& text);
  /// A short confirmation for the status bar.
  void status(const QString& text);

 private:
  void show_run(int64_t id);

  ResultsSession& session_;
  int64_t notes_run_ = -1;
  QLabel* notes_title_ = nullptr;
  QLineEdit* tags_edit_ = nullptr;
  QPlainTextEdit* note_edit_ = nullptr;
};

}  // namespace mmlab::ui
