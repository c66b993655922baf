// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/compare_panel.h"

#include <QCheckBox>
#include <QColor>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSignalBlocker>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/results/metric_names.h"
#include "core/results/speedup.h"
#include "ui/config_diff.h"
#include "ui/run_table_model.h"

namespace mmlab::ui {

using nlohmann::json;

ComparePanel::ComparePanel(ResultsSession& session, CurveSet& curves, QWidget* parent)
    : QWidget(parent), session_(session), curves_(curves) {
  auto* v = new QVBoxLayout(this);
  hint_ = new QLabel(this);
  hint_->setObjectName(QStringLiteral("compareHint"));
  hint_->setText(
      tr("Select two or more runs in the browser (Ctrl+click, Shift+click) to compare their "
         "curves, configs and speedups."));
  v->addWidget(hint_);
  auto* split = new QSplitter(Qt::Vertical, this);
  plot_ = new CurvePlot(&curves_, this);
  plot_->set_metric(QString::fromLatin1(metric::kLossSmooth));
  plot_->set_alpha(1.0);  // loss_smooth is smoothed by the trainer already
  split->addWidget(plot_);
  auto* lower = new QWidget(this);
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
    refresh();
  });
  tables->addWidget(diff_table_);
  tables->addWidget(speedups);
  tables->setStretchFactor(0, 2);
  lv->addWidget(tables, 1);
  split->addWidget(lower);
  v->addWidget(split);
  connect(only_diff_, &QCheckBox::toggled, this, &ComparePanel::refresh);
}

void ComparePanel::set_runs(const std::vector<int64_t>& ids) {
  runs_ = ids;
  refresh();
}

void ComparePanel::refresh() {
  const std::vector<int64_t>& ids = runs_;
  plot_->set_runs(ids);
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
    headers << run_label(*r);
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
  for (size_t i = 0; i < rows.size(); ++i)
    diff_table_->verticalHeaderItem(int(i))->setToolTip(QString::fromStdString(rows[i].doc));
  diff_table_->resizeColumnsToContents();

  hint_->setVisible(ids.size() < 2);
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
  const Series& base_series = curves_.series(base_id, metric::kLossSmooth);
  const LossCurve base{base_series.tokens, base_series.value};
  const std::optional<double> target = final_value(base);
  if (!target) return;
  speedup_table_->setRowCount(int(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    const Series& s = curves_.series(ids[i], metric::kLossSmooth);
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

}  // namespace mmlab::ui
