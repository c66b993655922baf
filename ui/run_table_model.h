// SPDX-License-Identifier: GPL-3.0-or-later
// The results browser's table: one row per run of the database (RunRow, read by ResultsSession
// without touching metric points), sorted and filtered through RunFilterProxy.
#pragma once

#include <QAbstractTableModel>
#include <QSortFilterProxyModel>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/store/store.h"

namespace mmlab::ui {

class RunTableModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column {
    kName,
    kExperiment,
    kFamily,
    kStatus,
    kParams,
    kActive,
    kSteps,
    kTokens,
    kFinalLoss,
    kBestVal,
    kTokensPerS,
    kDuration,
    kCreated,
    kTags,
    kColumnCount
  };
  /// Role carrying the raw value used for sorting (numbers as numbers).
  static constexpr int kSortRole = Qt::UserRole;
  /// Role carrying the run id (qint64).
  static constexpr int kIdRole = Qt::UserRole + 1;

  explicit RunTableModel(QObject* parent = nullptr) : QAbstractTableModel(parent) {}

  /// Replaces the rows; keeps views' selections when the set of runs is unchanged.
  void set_rows(std::vector<store::RunRow> rows);
  const store::RunRow& row_at(int row) const { return rows_[size_t(row)]; }
  std::optional<int> row_of(int64_t id) const;
  /// Runs whose host could not be reached at the last contact (run id → the sentence why): shown
  /// as `unreachable`, not `lost`, while they are not known to have ended.
  void set_unreachable(std::map<int64_t, QString> runs);
  /// `r` is shown `unreachable` (its host is away and it is not known to have ended).
  bool unreachable(const store::RunRow& r) const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

  /// "1.23M", "845k": parameter and token counts as people read them.
  static QString human_count(double n);
  /// "1 h 02 min", "35 s".
  static QString human_duration(double seconds);
  /// The Name column's tooltip: the op implementations the run used (none before its first step).
  static QVariant ops_tooltip(const store::RunRow& r);

 private:
  std::vector<store::RunRow> rows_;
  std::map<int64_t, QString> unreachable_;
};

class RunFilterProxy : public QSortFilterProxyModel {
  Q_OBJECT

 public:
  explicit RunFilterProxy(QObject* parent = nullptr);
  /// Case-insensitive substring of name, experiment, family or a tag.
  void set_text(const QString& text);
  /// Empty: any.
  void set_family(const QString& family);
  /// Empty: any; else a status word ("running", "lost", …) compared with the effective status.
  void set_status(const QString& status);
  void set_tag(const QString& tag);

 protected:
  bool filterAcceptsRow(int source_row, const QModelIndex& source_parent) const override;

 private:
  QString text_, family_, status_, tag_;
};

}  // namespace mmlab::ui
