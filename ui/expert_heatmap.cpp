// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/expert_heatmap.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/results/metric_names.h"
#include "ui/plot_theme.h"
#include "ui/qcp.h"

namespace mmlab::ui {

ExpertHeatmap::ExpertHeatmap(CurveSet* curves, QWidget* parent) : QWidget(parent), curves_(curves) {
  auto* v = new QVBoxLayout(this);
  auto* row = new QHBoxLayout;
  title_ = new QLabel(tr("Select a MoE run."), this);
  layer_ = new QComboBox(this);
  layer_->setObjectName(QStringLiteral("layer"));
  row->addWidget(title_, 1);
  row->addWidget(new QLabel(tr("MoE layer"), this));
  row->addWidget(layer_);
  v->addLayout(row);
  plot_ = new QCustomPlot(this);
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  plot_->axisRect()->setRangeZoom(Qt::Horizontal);
  plot_->axisRect()->setRangeDrag(Qt::Horizontal);
  plot_->xAxis->setLabel(tr("step"));
  plot_->yAxis->setLabel(tr("expert"));
  map_ = new QCPColorMap(plot_->xAxis, plot_->yAxis);
  auto* scale = new QCPColorScale(plot_);
  plot_->plotLayout()->addElement(0, 1, scale);
  scale->setLabel(tr("share of tokens"));
  map_->setColorScale(scale);
  map_->setGradient(QCPColorGradient::gpThermal);
  map_->setInterpolate(false);
  auto* group = new QCPMarginGroup(plot_);
  plot_->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, group);
  scale->setMarginGroup(QCP::msBottom | QCP::msTop, group);
  v->addWidget(plot_, 1);
  apply_plot_theme(plot_, palette());
  connect(layer_, &QComboBox::currentTextChanged, this, [this] { rebuild(); });
}

void ExpertHeatmap::changeEvent(QEvent* event) {
  if (event->type() == QEvent::PaletteChange) {
    apply_plot_theme(plot_, palette());
    plot_->replot(QCustomPlot::rpQueuedReplot);
  }
  QWidget::changeEvent(event);
}

void ExpertHeatmap::set_run(int64_t run_id, const QString& label,
                            const std::vector<std::string>& metrics) {
  run_id_ = run_id;
  metrics_.clear();
  std::set<std::string> layers;
  std::string layer;
  int expert = 0;
  for (const std::string& m : metrics)
    if (metric::parse_expert_load(m, layer, expert)) {
      metrics_.push_back(m);
      layers.insert(layer);
    }
  std::vector<std::string> sorted(layers.begin(), layers.end());
  std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // 2 before 10
  });
  {
    QSignalBlocker block(layer_);
    const QString keep = layer_->currentText();
    layer_->clear();
    for (const std::string& l : sorted) layer_->addItem(QString::fromStdString(l));
    if (layer_->findText(keep) >= 0) layer_->setCurrentText(keep);
  }
  title_->setText(metrics_.empty()
                      ? tr("%1 has no expert-load curves (not a MoE run, or the "
                           "trainer does not log them).")
                            .arg(label)
                      : tr("<b>%1</b>: expert load per step").arg(label.toHtmlEscaped()));
  rebuild();
}

QStringList ExpertHeatmap::layers() const {
  QStringList out;
  for (int i = 0; i < layer_->count(); ++i) out << layer_->itemText(i);
  return out;
}

double ExpertHeatmap::cell(int column, int expert) const {
  return map_->data()->cell(column, expert);
}

void ExpertHeatmap::rebuild() {
  const std::string layer = layer_->currentText().toStdString();
  std::map<int, std::string> by_expert;
  std::string l;
  int e = 0;
  for (const std::string& m : metrics_)
    if (metric::parse_expert_load(m, l, e) && l == layer) by_expert[e] = m;
  experts_ = by_expert.empty() ? 0 : by_expert.rbegin()->first + 1;
  double x0 = INFINITY, x1 = -INFINITY;
  for (const auto& [ex, name] : by_expert) {
    const Series& s = curves_->series(run_id_, name);
    if (s.size() == 0) continue;
    x0 = std::min(x0, s.step.front());
    x1 = std::max(x1, s.step.back());
  }
  if (experts_ == 0 || !(x1 >= x0)) {
    columns_ = 0;
    map_->data()->clear();
    plot_->replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  // Columns of equal step width; each holds the mean load of the points that fall in it.
  int points = 0;
  for (const auto& [ex, name] : by_expert)
    points = std::max(points, int(curves_->series(run_id_, name).size()));
  columns_ = std::max(1, std::min(points, kMaxColumns));
  map_->data()->setSize(columns_, experts_);
  map_->data()->setRange(QCPRange(x0, x1), QCPRange(0, experts_ - 1));
  for (int c = 0; c < columns_; ++c)
    for (int k = 0; k < experts_; ++k) map_->data()->setCell(c, k, NAN);
  for (const auto& [ex, name] : by_expert) {
    const Series& s = curves_->series(run_id_, name);
    std::vector<double> sum(size_t(columns_), 0.0);
    std::vector<int> n(size_t(columns_), 0);
    for (size_t i = 0; i < s.size(); ++i) {
      if (std::isnan(s.value[i])) continue;
      const int c =
          x1 > x0 ? std::min(columns_ - 1, int((s.step[i] - x0) / (x1 - x0) * columns_)) : 0;
      sum[size_t(c)] += s.value[i];
      ++n[size_t(c)];
    }
    for (int c = 0; c < columns_; ++c)
      if (n[size_t(c)] > 0) map_->data()->setCell(c, ex, sum[size_t(c)] / n[size_t(c)]);
  }
  map_->rescaleDataRange(true);
  plot_->rescaleAxes();
  plot_->yAxis->setRange(-0.5, experts_ - 0.5);
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace mmlab::ui
