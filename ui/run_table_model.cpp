// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/run_table_model.h"

#include <QApplication>
#include <QBrush>
#include <QColor>
#include <QDateTime>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ui/plot_theme.h"

namespace mmlab::ui {

namespace {

QString qs(std::string_view s) {
  return QString::fromUtf8(s.data(), int(s.size()));
}

QColor status_color(store::RunStatus s) {
  switch (s) {
    case store::RunStatus::kRunning:
      return QColor(0x1f, 0x77, 0xb4);
    case store::RunStatus::kFinished:
      return QColor(0x2c, 0xa0, 0x2c);
    case store::RunStatus::kFailed:
    case store::RunStatus::kDiverged:
      return QColor(0xd6, 0x27, 0x28);
    case store::RunStatus::kLost:
      return QColor(0xe3, 0x77, 0x0e);
    default:
      return {};
  }
}

}  // namespace

QString RunTableModel::human_count(double n) {
  const double a = std::abs(n);
  if (a >= 1e9) return QString::number(n / 1e9, 'f', 2) + QStringLiteral("B");
  if (a >= 1e6) return QString::number(n / 1e6, 'f', 2) + QStringLiteral("M");
  if (a >= 1e3) return QString::number(n / 1e3, 'f', 1) + QStringLiteral("k");
  return QString::number(qint64(n));
}

QString RunTableModel::human_duration(double s) {
  if (s < 60) return QStringLiteral("%1 s").arg(qint64(std::lround(s)));
  const qint64 m = qint64(s / 60);
  if (m < 60)
    return QStringLiteral("%1 min %2 s").arg(m).arg(qint64(s) % 60, 2, 10, QLatin1Char('0'));
  return QStringLiteral("%1 h %2 min").arg(m / 60).arg(m % 60, 2, 10, QLatin1Char('0'));
}

void RunTableModel::set_rows(std::vector<store::RunRow> rows) {
  bool same = rows.size() == rows_.size();
  for (size_t i = 0; same && i < rows.size(); ++i) same = rows[i].id == rows_[i].id;
  if (same) {
    rows_ = std::move(rows);
    if (!rows_.empty())
      Q_EMIT dataChanged(index(0, 0), index(int(rows_.size()) - 1, kColumnCount - 1));
    return;
  }
  beginResetModel();
  rows_ = std::move(rows);
  endResetModel();
}

std::optional<int> RunTableModel::row_of(int64_t id) const {
  for (size_t i = 0; i < rows_.size(); ++i)
    if (rows_[i].id == id) return int(i);
  return std::nullopt;
}

int RunTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(rows_.size());
}

int RunTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumnCount;
}

QVariant RunTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kName:
      return tr("Run");
    case kExperiment:
      return tr("Experiment");
    case kFamily:
      return tr("Family");
    case kStatus:
      return tr("Status");
    case kParams:
      return tr("Params");
    case kActive:
      return tr("Active");
    case kSteps:
      return tr("Steps");
    case kTokens:
      return tr("Tokens");
    case kFinalLoss:
      return tr("Final loss (EMA)");
    case kBestVal:
      return tr("Best val loss");
    case kTokensPerS:
      return tr("Tokens/s");
    case kDuration:
      return tr("Duration");
    case kCreated:
      return tr("Created");
    case kTags:
      return tr("Tags");
  }
  return {};
}

// The op implementations the run's steps used (RunRow::ops_used), e.g.
// "Op implementations: causal_conv1d=cuda, selective_scan=cuda"; none before its first step.
QVariant RunTableModel::ops_tooltip(const store::RunRow& r) {
  const auto ops = nlohmann::json::parse(r.ops_used, nullptr, false);
  if (!ops.is_object() || ops.empty()) return {};
  QStringList parts;
  for (auto it = ops.begin(); it != ops.end(); ++it) {
    parts << QStringLiteral("%1=%2").arg(
        QString::fromStdString(it.key()),
        QString::fromStdString(it.value().is_string() ? it.value().get<std::string>()
                                                      : it.value().dump()));
  }
  return tr("Op implementations: %1").arg(parts.join(QStringLiteral(", ")));
}

QVariant RunTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= int(rows_.size())) return {};
  const store::RunRow& r = rows_[size_t(index.row())];
  if (role == kIdRole) return QVariant::fromValue<qint64>(r.id);
  const bool sort = role == kSortRole;
  if (role != Qt::DisplayRole && !sort) {
    if (role == Qt::ForegroundRole && index.column() == kStatus) {
      QColor c = status_color(r.effective_status);
      if (c.isValid() && is_dark(QApplication::palette())) c = c.lighter(160);  // on dark rows
      return c.isValid() ? QVariant(QBrush(c)) : QVariant();
    }
    if (role == Qt::ToolTipRole && index.column() == kName) return ops_tooltip(r);
    if (role == Qt::ToolTipRole && index.column() == kStatus && unreachable(r))
      return unreachable_.at(r.id);
    if (role == Qt::ToolTipRole && index.column() == kStatus && !r.error_text.empty())
      return QString::fromStdString(r.error_text);
    if (role == Qt::ToolTipRole && index.column() == kStatus &&
        r.effective_status == store::RunStatus::kLost)
      return tr("Marked running, but its heartbeat is stale and its process is gone.");
    if (role == Qt::TextAlignmentRole && index.column() >= kParams && index.column() <= kDuration)
      return int(Qt::AlignRight | Qt::AlignVCenter);
    return {};
  }
  auto opt = [&](const std::optional<double>& v, int prec) -> QVariant {
    if (!v) return sort ? QVariant(std::numeric_limits<double>::infinity()) : QVariant();
    return sort ? QVariant(*v) : QVariant(QString::number(*v, 'f', prec));
  };
  switch (index.column()) {
    case kName:
      return QString::fromStdString(r.name);
    case kExperiment:
      return QString::fromStdString(r.experiment);
    case kFamily:
      return QString::fromStdString(r.family);
    case kStatus:
      if (unreachable(r)) return QStringLiteral("unreachable");
      return qs(store::to_string(r.effective_status));
    case kParams:
      return sort ? QVariant(qint64(r.params_total))
                  : QVariant(human_count(double(r.params_total)));
    case kActive:
      return sort ? QVariant(qint64(r.params_active))
                  : QVariant(human_count(double(r.params_active)));
    case kSteps:
      if (sort) return qint64(r.step);
      return r.total_steps > 0 ? QStringLiteral("%1 / %2").arg(r.step).arg(r.total_steps)
                               : QString::number(r.step);
    case kTokens:
      return sort ? QVariant(qint64(r.tokens)) : QVariant(human_count(double(r.tokens)));
    case kFinalLoss:
      return opt(r.final_loss_smooth, 4);
    case kBestVal:
      return opt(r.best_val_loss, 4);
    case kTokensPerS:
      if (!r.tokens_per_s) return sort ? QVariant(0.0) : QVariant();
      return sort ? QVariant(*r.tokens_per_s) : QVariant(human_count(*r.tokens_per_s));
    case kDuration:
      if (!r.duration_s) return sort ? QVariant(0.0) : QVariant();
      return sort ? QVariant(*r.duration_s) : QVariant(human_duration(*r.duration_s));
    case kCreated:
      if (sort) return r.created_at;
      return QDateTime::fromMSecsSinceEpoch(qint64(r.created_at * 1000))
          .toString(QStringLiteral("yyyy-MM-dd HH:mm"));
    case kTags: {
      QStringList t;
      for (const auto& s : r.tags) t << QString::fromStdString(s);
      return t.join(QStringLiteral(", "));
    }
  }
  return {};
}

RunFilterProxy::RunFilterProxy(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(RunTableModel::kSortRole);
  setDynamicSortFilter(true);
}

void RunFilterProxy::set_text(const QString& text) {
  text_ = text.trimmed();
  invalidateFilter();
}
void RunFilterProxy::set_family(const QString& family) {
  family_ = family;
  invalidateFilter();
}
void RunFilterProxy::set_status(const QString& status) {
  status_ = status;
  invalidateFilter();
}
void RunFilterProxy::set_tag(const QString& tag) {
  tag_ = tag;
  invalidateFilter();
}

bool RunFilterProxy::filterAcceptsRow(int source_row, const QModelIndex&) const {
  auto* m = static_cast<const RunTableModel*>(sourceModel());
  const store::RunRow& r = m->row_at(source_row);
  if (!family_.isEmpty() && QString::fromStdString(r.family) != family_) return false;
  if (!status_.isEmpty() && qs(store::to_string(r.effective_status)) != status_) return false;
  if (!tag_.isEmpty()) {
    bool has = false;
    for (const auto& t : r.tags) has |= QString::fromStdString(t) == tag_;
    if (!has) return false;
  }
  if (text_.isEmpty()) return true;
  auto has = [&](const std::string& s) {
    return QString::fromStdString(s).contains(text_, Qt::CaseInsensitive);
  };
  if (has(r.name) || has(r.experiment) || has(r.family)) return true;
  for (const auto& t : r.tags)
    if (has(t)) return true;
  return false;
}

void RunTableModel::set_unreachable(std::map<int64_t, QString> runs) {
  if (runs == unreachable_) return;
  unreachable_ = std::move(runs);
  if (!rows_.empty()) Q_EMIT dataChanged(index(0, kStatus), index(int(rows_.size()) - 1, kStatus));
}

bool RunTableModel::unreachable(const store::RunRow& r) const {
  // A run seen ending is what it is; one marked running on an unreachable host is not lost.
  return unreachable_.count(r.id) && !store::is_terminal(r.status);
}

}  // namespace mmlab::ui
