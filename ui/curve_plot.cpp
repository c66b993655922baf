// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/curve_plot.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDateTime>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QShortcut>
#include <QSlider>
#include <QSvgGenerator>
#include <QTextStream>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include "core/util/error.h"
#include "core/util/fs.h"
#include "ui/plot_theme.h"
#include "ui/qcp.h"

namespace mmlab::ui {

namespace {

constexpr int kTickMs = 100;  // replot at most 10 times a second (STYLE.md 14)

// The smoothing controls show TensorBoard's weight w = 1 - α (0 = raw … 0.9999); the slider
// moves it linearly in steps of 0.0001, like TensorBoard's.
constexpr int kWeightSteps = 10000;

QString axis_label(XAxis axis) {
  switch (axis) {
    case XAxis::kStep:
      return QObject::tr("step");
    case XAxis::kTokens:
      return QObject::tr("tokens");
    case XAxis::kRelative:
      return QObject::tr("relative time since the run's start (h:m:s)");
    case XAxis::kWallClock:
      return QObject::tr("wall-clock time (local)");
  }
  return {};
}

// Token counts run into the billions: tick labels as 500K, 1.5M, 2B instead of 1.5e+06.
class TokenTicker : public QCPAxisTicker {
 protected:
  QString getTickLabel(double tick, const QLocale&, QChar, int) override {
    return CurvePlot::count_label(tick);
  }
};

class TokenLogTicker : public QCPAxisTickerLog {
 protected:
  QString getTickLabel(double tick, const QLocale&, QChar, int) override {
    return CurvePlot::count_label(tick);
  }
};

QVector<QCPGraphData> to_graph_data(const std::vector<double>& x, const std::vector<double>& y) {
  QVector<QCPGraphData> out(int(x.size()));
  for (size_t i = 0; i < x.size(); ++i) out[int(i)] = QCPGraphData(x[i], y[i]);
  return out;
}

QString csv_field(const QString& s) {
  if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"'))) return s;
  QString q = s;
  q.replace(QLatin1String("\""), QLatin1String("\"\""));
  return QLatin1Char('"') + q + QLatin1Char('"');
}

}  // namespace

QString CurvePlot::count_label(double n) {
  const double a = std::abs(n);
  const std::pair<double, const char*> units[] = {{1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& [scale, suffix] : units)
    if (a >= scale) return QString::number(n / scale, 'g', 4) + QLatin1String(suffix);
  // Below 1000: an integer count, or the ticker's fraction near 0 (never an exponent).
  return QString::number(std::abs(n) < 1e-9 ? 0.0 : n, 'g', 4);
}

const QStringList& CurvePlot::standard_metrics() {
  static const QStringList kNames = [] {
    QStringList names;
    for (std::string_view name : metric::kCurves)
      names << QString::fromLatin1(name.data(), qsizetype(name.size()));
    return names;
  }();
  return kNames;
}

CurvePlot::CurvePlot(CurveSet* curves, QWidget* parent) : QWidget(parent), curves_(curves) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* bar = new QHBoxLayout;
  metric_box_ = new QComboBox(this);
  metric_box_->setObjectName(QStringLiteral("metric"));
  metric_box_->setToolTip(tr("Metric shown (names as in the database)"));
  metric_box_->setMinimumContentsLength(14);
  axis_box_ = new QComboBox(this);
  axis_box_->setObjectName(QStringLiteral("xaxis"));
  // In XAxis order.
  axis_box_->addItems({tr("step"), tr("tokens"), tr("relative time (s)"), tr("wall time")});
  axis_box_->setItemData(int(XAxis::kRelative),
                         tr("Training seconds since the run's first start (time stopped does not "
                            "count)"),
                         Qt::ToolTipRole);
  axis_box_->setItemData(int(XAxis::kWallClock),
                         tr("Date and time each point was logged (a resumed run's later points "
                            "after the time it spent stopped)"),
                         Qt::ToolTipRole);
  log_x_box_ = new QCheckBox(tr("log x"), this);
  log_y_box_ = new QCheckBox(tr("log y"), this);
  raw_box_ = new QCheckBox(tr("raw"), this);
  raw_box_->setChecked(true);
  raw_box_->setToolTip(tr("Draw the unsmoothed curve faintly underneath"));
  group_box_ = new QCheckBox(tr("seed groups"), this);
  group_box_->setToolTip(tr("Runs differing only in seed: mean line with a band"));
  band_box_ = new QComboBox(this);
  band_box_->addItems({tr("min–max"), tr("95% CI")});
  band_box_->setToolTip(tr("Band of a seed group: the range of the seeds, or Student-t 95% CI"));
  const QString smoothing_tip =
      tr("EMA smoothing on every point, debiased: s_t = w·s_{t-1} + (1-w)·x_t, α = 1 - w. Auto: a "
         "time constant of 5% of the longest run's steps (the paper's α = 0.001 suits 100k-step "
         "runs)");
  alpha_slider_ = new QSlider(Qt::Horizontal, this);
  alpha_slider_->setObjectName(QStringLiteral("alpha"));
  alpha_slider_->setRange(0, kWeightSteps - 1);
  alpha_slider_->setPageStep(kWeightSteps / 20);
  // A fixed width: a squeezed toolbar must not shrink it to a box that looks like a checkbox.
  alpha_slider_->setFixedWidth(140);
  alpha_slider_->setToolTip(smoothing_tip);
  weight_box_ = new QDoubleSpinBox(this);
  weight_box_->setObjectName(QStringLiteral("smoothingWeight"));
  weight_box_->setRange(0, double(kWeightSteps - 1) / kWeightSteps);
  weight_box_->setDecimals(4);
  weight_box_->setSingleStep(0.01);
  weight_box_->setToolTip(smoothing_tip);
  auto_alpha_box_ = new QCheckBox(tr("auto"), this);
  auto_alpha_box_->setObjectName(QStringLiteral("smoothingAuto"));
  auto_alpha_box_->setToolTip(smoothing_tip);
  alpha_label_ = new QLabel(this);
  auto* fit = new QToolButton(this);
  fit->setText(tr("Fit"));
  fit->setToolTip(tr("Fit all (double-click the chart)"));
  auto* back = new QToolButton(this);
  back->setText(tr("Back"));
  back->setToolTip(tr("Previous zoom (Backspace)"));
  bar->addWidget(new QLabel(tr("Metric"), this));
  bar->addWidget(metric_box_);
  bar->addWidget(new QLabel(tr("x"), this));
  bar->addWidget(axis_box_);
  bar->addWidget(log_x_box_);
  bar->addWidget(log_y_box_);
  bar->addStretch(1);
  bar->addWidget(back);
  bar->addWidget(fit);
  layout->addLayout(bar);
  // Smoothing and seed groups on a second row: one row of every control needed ~840 px, which
  // kept the results browser beside the chart from being widened.
  auto* smoothing_row = new QHBoxLayout;
  smoothing_row->addWidget(new QLabel(tr("Smoothing"), this));
  smoothing_row->addWidget(alpha_slider_);
  smoothing_row->addWidget(weight_box_);
  smoothing_row->addWidget(auto_alpha_box_);
  smoothing_row->addWidget(alpha_label_);
  smoothing_row->addWidget(raw_box_);
  smoothing_row->addWidget(group_box_);
  smoothing_row->addWidget(band_box_);
  smoothing_row->addStretch(1);
  layout->addLayout(smoothing_row);

  plot_ = new QCustomPlot(this);
  plot_->setObjectName(QStringLiteral("curvePlot"));
  plot_->setMinimumSize(320, 200);
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  plot_->setNoAntialiasingOnDrag(true);  // keeps panning smooth with many curves
  plot_->legend->setVisible(true);
  plot_->legend->setFont(QFont(font().family(), 8));
  plot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
  plot_->setSelectionRectMode(QCP::srmNone);
  // What to do when the chart has nothing to show (set_empty_text).
  empty_text_ = new QCPItemText(plot_);
  empty_text_->setPositionAlignment(Qt::AlignCenter);
  empty_text_->position->setType(QCPItemPosition::ptAxisRectRatio);
  empty_text_->position->setCoords(0.5, 0.5);
  empty_text_->setColor(QColor(128, 128, 128));
  empty_text_->setSelectable(false);
  empty_text_->setVisible(false);
  crosshair_ = new QCPItemStraightLine(plot_);
  crosshair_->setPen(QPen(QColor(120, 120, 120, 160), 1, Qt::DashLine));
  crosshair_->setVisible(false);
  crosshair_->setSelectable(false);
  plot_->installEventFilter(this);
  layout->addWidget(plot_, 1);
  readout_ = new QLabel(this);
  readout_->setObjectName(QStringLiteral("readout"));
  readout_->setTextFormat(Qt::RichText);
  readout_->setWordWrap(true);
  readout_->setMinimumHeight(readout_->fontMetrics().height() * 2);
  layout->addWidget(readout_);

  timer_ = new QTimer(this);
  timer_->setInterval(kTickMs);
  connect(timer_, &QTimer::timeout, this, &CurvePlot::on_tick);
  timer_->start();

  connect(curves_, &CurveSet::changed, this, &CurvePlot::mark_dirty);
  connect(plot_->xAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
          &CurvePlot::on_x_range_changed);
  connect(plot_, &QCustomPlot::mouseMove, this, &CurvePlot::on_mouse_move);
  connect(plot_, &QCustomPlot::mousePress, this, &CurvePlot::on_mouse_press);
  connect(plot_, &QCustomPlot::mouseWheel, this, &CurvePlot::on_wheel);
  connect(plot_, &QCustomPlot::mouseDoubleClick, this, [this](QMouseEvent*) { fit_all(); });
  connect(metric_box_, &QComboBox::currentTextChanged, this, [this](const QString& m) {
    if (!m.isEmpty() && m != metric_) set_metric(m);
  });
  connect(axis_box_, qOverload<int>(&QComboBox::currentIndexChanged), this,
          [this](int i) { set_x_axis(XAxis(i)); });
  connect(log_x_box_, &QCheckBox::toggled, this, &CurvePlot::set_log_x);
  connect(log_y_box_, &QCheckBox::toggled, this, &CurvePlot::set_log_y);
  connect(raw_box_, &QCheckBox::toggled, this, &CurvePlot::set_show_raw);
  connect(group_box_, &QCheckBox::toggled, this, &CurvePlot::set_group_seeds);
  connect(band_box_, qOverload<int>(&QComboBox::currentIndexChanged), this,
          [this](int i) { set_band_kind(i == 1 ? BandKind::kCi95 : BandKind::kMinMax); });
  connect(alpha_slider_, &QSlider::valueChanged, this,
          [this](int v) { set_alpha(1.0 - double(v) / kWeightSteps); });
  connect(weight_box_, qOverload<double>(&QDoubleSpinBox::valueChanged), this,
          [this](double w) { set_alpha(1.0 - w); });
  connect(auto_alpha_box_, &QCheckBox::toggled, this, &CurvePlot::set_auto_alpha);
  connect(fit, &QToolButton::clicked, this, &CurvePlot::fit_all);
  connect(back, &QToolButton::clicked, this, &CurvePlot::zoom_back);
  for (const QKeySequence& k :
       {QKeySequence(Qt::Key_Backspace), QKeySequence(Qt::ALT | Qt::Key_Left)}) {
    auto* sc = new QShortcut(k, this);
    sc->setContext(Qt::WidgetWithChildrenShortcut);
    connect(sc, &QShortcut::activated, this, &CurvePlot::zoom_back);
  }
  show_smoothing();
  refresh_metric_list();
  apply_axis_types();
  apply_plot_theme(plot_, palette());
}

void CurvePlot::changeEvent(QEvent* event) {
  // The application's palette changed (View ▸ Theme, or the desktop's own dark mode).
  if (event->type() == QEvent::PaletteChange) {
    apply_plot_theme(plot_, palette());
    plot_->replot(QCustomPlot::rpQueuedReplot);
  }
  QWidget::changeEvent(event);
}

void CurvePlot::set_empty_text(const QString& text) {
  empty_text_->setText(text);
  empty_text_->setVisible(runs_.empty() && !text.isEmpty());
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

QString CurvePlot::empty_text() const {
  return empty_text_->text();
}

bool CurvePlot::empty_text_shown() const {
  return empty_text_->visible();
}

void CurvePlot::set_runs(const std::vector<int64_t>& runs) {
  empty_text_->setVisible(runs.empty() && !empty_text_->text().isEmpty());
  runs_ = runs;
  colors_ = CurveSet::distinct_colors(runs_);
  autofit_ = true;
  refresh_metric_list();
  dirty_ = true;
}

void CurvePlot::set_metric(const QString& metric) {
  if (metric == metric_) return;
  metric_ = metric;
  {
    QSignalBlocker block(metric_box_);
    int i = metric_box_->findText(metric);
    if (i < 0) {
      metric_box_->addItem(metric);
      i = metric_box_->count() - 1;
    }
    metric_box_->setCurrentIndex(i);
  }
  history_.clear();
  autofit_ = true;
  dirty_ = true;
  Q_EMIT metricChanged(metric_);
}

void CurvePlot::set_x_axis(XAxis axis) {
  if (int(axis) < 0 || int(axis) > int(XAxis::kWallClock)) axis = XAxis::kStep;
  x_axis_ = axis;
  {
    QSignalBlocker block(axis_box_);
    axis_box_->setCurrentIndex(int(axis));
  }
  history_.clear();
  autofit_ = true;
  apply_axis_types();
  dirty_ = true;
}

void CurvePlot::set_log_x(bool on) {
  set_log_scale(on, log_x_, log_x_box_);
}

void CurvePlot::set_log_y(bool on) {
  set_log_scale(on, log_y_, log_y_box_);
}

void CurvePlot::set_log_scale(bool on, bool& flag, QCheckBox* box) {
  flag = on;
  QSignalBlocker block(box);
  box->setChecked(on);
  apply_axis_types();
  autofit_ = true;
  dirty_ = true;
}

void CurvePlot::set_alpha(double alpha) {
  alpha_ = std::clamp(alpha, 1e-4, 1.0);
  auto_alpha_ = false;
  show_smoothing();
  dirty_ = true;
}

void CurvePlot::set_auto_alpha(bool on) {
  if (!on && auto_alpha_) alpha_ = alpha();  // keep what was shown as the starting point
  auto_alpha_ = on;
  show_smoothing();
  dirty_ = true;
}

double CurvePlot::alpha() const {
  if (!auto_alpha_) return alpha_;
  int64_t longest = 0;
  for (int64_t id : runs_) {
    const RunCurves* r = curves_->find(id);
    if (!r) continue;
    int64_t steps = r->total_steps;
    if (steps <= 0)
      if (auto it = r->metrics.find(metric_.toStdString());
          it != r->metrics.end() && !it->second.step.empty())
        steps = int64_t(it->second.step.back());
    longest = std::max(longest, steps);
  }
  return longest > 0 ? default_smoothing_alpha(longest) : alpha_;
}

void CurvePlot::show_smoothing() {
  const double a = alpha();
  QSignalBlocker b1(alpha_slider_), b2(weight_box_), b3(auto_alpha_box_);
  alpha_slider_->setValue(int(std::lround((1.0 - a) * kWeightSteps)));
  weight_box_->setValue(1.0 - a);
  auto_alpha_box_->setChecked(auto_alpha_);
  alpha_label_->setText(QStringLiteral("α = %1").arg(a, 0, 'g', 3));
}

void CurvePlot::set_show_raw(bool on) {
  show_raw_ = on;
  QSignalBlocker block(raw_box_);
  raw_box_->setChecked(on);
  dirty_ = true;
}

void CurvePlot::set_group_seeds(bool on) {
  group_seeds_ = on;
  QSignalBlocker block(group_box_);
  group_box_->setChecked(on);
  dirty_ = true;
}

void CurvePlot::set_band_kind(BandKind kind) {
  band_kind_ = kind;
  QSignalBlocker block(band_box_);
  band_box_->setCurrentIndex(kind == BandKind::kCi95 ? 1 : 0);
  dirty_ = true;
}

void CurvePlot::apply_axis_types() {
  QCPAxis* x = plot_->xAxis;
  QCPAxis* y = plot_->yAxis;
  x->setScaleType(log_x() ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  y->setScaleType(log_y_ ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  log_x_box_->setEnabled(x_axis_ != XAxis::kWallClock);
  if (x_axis_ == XAxis::kWallClock) {
    // Keys are Unix seconds (QCPAxisTickerDateTime::dateTimeToKey), shown in local time.
    auto t = QSharedPointer<QCPAxisTickerDateTime>(new QCPAxisTickerDateTime);
    t->setDateTimeFormat(QStringLiteral("HH:mm:ss\nd MMM yyyy"));
    x->setTicker(t);
  } else if (log_x()) {
    x->setTicker(x_axis_ == XAxis::kTokens ? QSharedPointer<QCPAxisTicker>(new TokenLogTicker)
                                           : QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog));
  } else if (x_axis_ == XAxis::kTokens) {
    x->setTicker(QSharedPointer<QCPAxisTicker>(new TokenTicker));
  } else if (x_axis_ == XAxis::kRelative) {
    auto t = QSharedPointer<QCPAxisTickerTime>(new QCPAxisTickerTime);
    t->setTimeFormat(QStringLiteral("%h:%m:%s"));
    x->setTicker(t);
  } else {
    x->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  }
  y->setTicker(log_y_ ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog)
                      : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  x->setLabel(axis_label(x_axis_));
  y->setLabel(metric_);
}

void CurvePlot::refresh_metric_list() {
  QStringList names = standard_metrics();
  for (const std::string& n : curves_->metric_names(runs_)) {
    const QString q = QString::fromStdString(n);
    if (!names.contains(q)) names << q;
  }
  if (!names.contains(metric_)) names << metric_;
  QStringList current;
  for (int i = 0; i < metric_box_->count(); ++i) current << metric_box_->itemText(i);
  if (current == names) return;
  QSignalBlocker block(metric_box_);
  metric_box_->clear();
  metric_box_->addItems(names);
  metric_box_->setCurrentIndex(names.indexOf(metric_));
}

QCPGraph* CurvePlot::take_graph(size_t& index) {
  QCPGraph* g = int(index) < plot_->graphCount() ? plot_->graph(int(index)) : plot_->addGraph();
  ++index;
  g->setChannelFillGraph(nullptr);
  g->setBrush(Qt::NoBrush);
  g->setLineStyle(QCPGraph::lsLine);
  g->setScatterStyle(QCPScatterStyle());
  g->setVisible(true);
  return g;
}

void CurvePlot::rebuild() {
  dirty_ = false;
  plot_->yAxis->setLabel(metric_);
  const std::string metric = metric_.toStdString();
  const QCPRange vis = plot_->xAxis->range();
  // Reduce over the visible range plus one screen on each side: a pan of up to one screen shows
  // real data immediately, before the next tick refines.
  XGrid grid;
  grid.log = log_x();
  const int px = std::max(64, plot_->axisRect()->width());
  if (log_x() && vis.lower > 0) {
    const double ratio = vis.upper / vis.lower;
    grid.lo = vis.lower / ratio;
    grid.hi = vis.upper * ratio;
  } else {
    grid.lo = vis.lower - vis.size();
    grid.hi = vis.upper + vis.size();
  }
  grid.buckets = 3 * px;
  built_lo_ = grid.lo;
  built_hi_ = grid.hi;
  built_span_ = log_x() && vis.lower > 0 ? vis.upper / vis.lower : vis.size();
  built_px_ = px;

  size_t used = 0;
  smooth_graphs_.clear();
  std::vector<double> ox, oy;
  const double lw = paper_ ? 1.6 : 1.0;
  const double alpha = this->alpha();
  show_smoothing();  // auto α follows the shown runs
  const bool raw = show_raw_ && alpha < 1.0 && !paper_;
  // The α in use is part of what a curve is: it goes into the legend (and so into exports).
  const QString smoothing =
      alpha < 1.0 ? QStringLiteral(", EMA α %1").arg(alpha, 0, 'g', 2) : QString();

  // Seed groups: members of a group with ≥2 visible runs are drawn as one band + mean.
  std::map<QString, std::vector<int64_t>> groups;
  if (group_seeds_)
    for (int64_t id : runs_)
      if (const RunCurves* r = curves_->find(id); r && !r->group.isEmpty())
        groups[r->group].push_back(id);
  std::set<int64_t> grouped;
  for (auto& [name, ids] : groups) {
    if (ids.size() < 2) continue;
    std::vector<XY> members;
    for (int64_t id : ids) {
      Series& s = curves_->series(id, metric);
      s.update_smooth(alpha);
      grouped.insert(id);
      if (const std::vector<double>* xs = curves_->x_of(id, s, x_axis_))
        members.push_back({xs, &s.smooth});
    }
    Band band = seed_band(members, band_kind_);
    const QColor c = color_of(ids.front());
    QCPGraph* lo = take_graph(used);
    QCPGraph* hi = take_graph(used);
    QCPGraph* mean = take_graph(used);
    for (auto [g, ys] : {std::pair{lo, &band.lo}, std::pair{hi, &band.hi}}) {
      ox.clear();
      oy.clear();
      minmax_downsample(band.x.data(), ys->data(), band.x.size(), grid, ox, oy);
      g->data()->set(to_graph_data(ox, oy), true);
      g->setPen(Qt::NoPen);
      g->removeFromLegend();
    }
    QColor fill = c;
    fill.setAlpha(50);
    hi->setBrush(fill);
    hi->setChannelFillGraph(lo);
    ox.clear();
    oy.clear();
    minmax_downsample(band.x.data(), band.mean.data(), band.x.size(), grid, ox, oy);
    mean->data()->set(to_graph_data(ox, oy), true);
    mean->setPen(QPen(c, lw));
    mean->setName(tr("%1 (mean of %2 seeds, %3%4)")
                      .arg(name)
                      .arg(ids.size())
                      .arg(band_kind_ == BandKind::kCi95 ? tr("95% CI") : tr("min–max"))
                      .arg(smoothing));
    mean->addToLegend();
    smooth_graphs_.emplace_back(-1, mean);
  }

  for (int64_t id : runs_) {
    if (grouped.count(id)) continue;
    Series& s = curves_->series(id, metric);
    const RunCurves* r = curves_->find(id);
    s.update_smooth(alpha);
    const std::vector<double>* xp = curves_->x_of(id, s, x_axis_);
    if (!xp) continue;  // no start time yet: not on the wall-clock axis
    const std::vector<double>& xs = *xp;
    if (raw) {
      QCPGraph* g = take_graph(used);
      ox.clear();
      oy.clear();
      minmax_downsample(xs.data(), s.value.data(), s.size(), grid, ox, oy);
      g->data()->set(to_graph_data(ox, oy), true);
      QColor faint = color_of(id);
      faint.setAlpha(55);
      g->setPen(QPen(faint, 1));
      g->removeFromLegend();
    }
    QCPGraph* g = take_graph(used);
    ox.clear();
    oy.clear();
    minmax_downsample(xs.data(), s.smooth.data(), s.size(), grid, ox, oy);
    g->data()->set(to_graph_data(ox, oy), true);
    g->setPen(QPen(color_of(id), lw));
    g->setName(smoothing.isEmpty() ? r->label
                                   : QStringLiteral("%1 (%2)").arg(r->label, smoothing.mid(2)));
    g->addToLegend();
    if (s.size() == 1) g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, 5));
    smooth_graphs_.emplace_back(id, g);
  }
  while (plot_->graphCount() > int(used)) plot_->removeGraph(plot_->graphCount() - 1);
  if (hovering_) update_crosshair();
}

int CurvePlot::points_drawn() const {
  int n = 0;
  for (int i = 0; i < plot_->graphCount(); ++i) n += plot_->graph(i)->data()->size();
  return n;
}

std::vector<std::pair<double, double>> CurvePlot::drawn(int64_t run_id) const {
  std::vector<std::pair<double, double>> out;
  for (const auto& [id, g] : smooth_graphs_) {
    if (id != run_id) continue;
    for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it)
      out.emplace_back(it->key, it->value);
  }
  return out;
}

std::pair<double, double> CurvePlot::y_range_of(double x_lo, double x_hi) const {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < plot_->graphCount(); ++i) {
    const QCPGraph* g = plot_->graph(i);
    if (!g->visible()) continue;
    for (auto it = g->data()->findBegin(x_lo, false); it != g->data()->constEnd(); ++it) {
      if (it->key > x_hi) break;
      const double v = it->value;
      if (!std::isfinite(v) || (log_y_ && v <= 0)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  return {lo, hi};
}

void CurvePlot::fit_all() {
  if (plot_->graphCount() > 0 && !autofit_) push_history();
  double x0 = INFINITY, x1 = -INFINITY;
  const std::string metric = metric_.toStdString();
  for (int64_t id : runs_) {
    Series& s = curves_->series(id, metric);
    const std::vector<double>* xp = curves_->x_of(id, s, x_axis_);
    if (!xp) continue;
    const std::vector<double>& xs = *xp;
    for (double x : xs) {  // first usable x (log axes skip x ≤ 0)
      if (log_x() && x <= 0) continue;
      x0 = std::min(x0, x);
      break;
    }
    if (!xs.empty()) x1 = std::max(x1, xs.back());
  }
  autofit_ = true;
  if (!(x1 >= x0)) {  // nothing to show
    plot_->replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  if (x1 == x0) {
    x0 = log_x() ? x0 / 2 : x0 - 1;
    x1 = log_x() ? x1 * 2 : x1 + 1;
  }
  {
    QSignalBlocker block(plot_->xAxis);
    plot_->xAxis->setRange(x0, x1);
  }
  rebuild();
  auto [y0, y1] = y_range_of(x0, x1);
  if (y1 >= y0) {
    if (log_y_) {
      plot_->yAxis->setRange(y0 / 1.1, y1 * 1.1);
    } else {
      const double pad = y1 > y0 ? 0.04 * (y1 - y0) : std::max(1e-9, std::abs(y0) * 0.05);
      plot_->yAxis->setRange(y0 - pad, y1 + pad);
    }
  }
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void CurvePlot::push_history() {
  history_.push_back({plot_->xAxis->range().lower, plot_->xAxis->range().upper,
                      plot_->yAxis->range().lower, plot_->yAxis->range().upper});
  if (history_.size() > 50) history_.erase(history_.begin());
}

bool CurvePlot::zoom_back() {
  if (history_.empty()) return false;
  const Ranges r = history_.back();
  history_.pop_back();
  autofit_ = false;
  plot_->xAxis->setRange(r.x0, r.x1);
  plot_->yAxis->setRange(r.y0, r.y1);
  dirty_ = true;
  plot_->replot(QCustomPlot::rpQueuedReplot);
  return true;
}

void CurvePlot::on_x_range_changed() {
  // A pan inside the already reduced range at the same zoom level needs no new reduction: QCP
  // redraws what it has. Zooming (span changes) or leaving the range refines.
  const QCPRange vis = plot_->xAxis->range();
  const double span = log_x() && vis.lower > 0 ? vis.upper / vis.lower : vis.size();
  const bool same_zoom = built_span_ > 0 && std::abs(span / built_span_ - 1) < 0.02;
  const bool inside = vis.lower >= built_lo_ && vis.upper <= built_hi_;
  if (!same_zoom || !inside || built_px_ != std::max(64, plot_->axisRect()->width())) dirty_ = true;
  if (hovering_) update_crosshair();  // the cursor now points at another x
}

bool CurvePlot::refine_if_needed() {
  if (!dirty_) return false;
  rebuild();
  return true;
}

void CurvePlot::on_tick() {
  if (!dirty_ || !isVisible()) return;
  refresh_metric_list();
  if (autofit_) {
    fit_all();  // rebuilds
  } else {
    rebuild();
    plot_->replot(QCustomPlot::rpQueuedReplot);
  }
}

void CurvePlot::on_mouse_press(QMouseEvent* event) {
  autofit_ = false;
  const bool box =
      (event->button() == Qt::LeftButton && (event->modifiers() & Qt::ShiftModifier)) ||
      event->button() == Qt::RightButton;
  if (box) push_history();
  // QCustomPlot starts the selection rectangle after this signal, so the mode set here applies
  // to this very press.
  plot_->setSelectionRectMode(box ? QCP::srmZoom : QCP::srmNone);
}

void CurvePlot::on_wheel(QWheelEvent* event) {
  autofit_ = false;
  const qint64 now = QDateTime::currentMSecsSinceEpoch();
  if (now - last_wheel_push_ms_ > 800) push_history();  // one history entry per wheel gesture
  last_wheel_push_ms_ = now;
  Qt::Orientations o = Qt::Horizontal | Qt::Vertical;
  if (event->modifiers() & Qt::ControlModifier) o = Qt::Horizontal;
  if (event->modifiers() & Qt::ShiftModifier) o = Qt::Vertical;
  plot_->axisRect()->setRangeZoom(o);
}

QString CurvePlot::readout_at(double x) {
  const std::string metric = metric_.toStdString();
  QStringList parts;
  for (int64_t id : runs_) {
    Series& s = curves_->series(id, metric);
    const RunCurves* r = curves_->find(id);
    s.update_smooth(alpha());
    const std::vector<double>* xp = curves_->x_of(id, s, x_axis_);
    if (!xp) continue;
    const std::vector<double>& xs = *xp;
    auto it = std::upper_bound(xs.begin(), xs.end(), x);
    if (it == xs.begin()) continue;
    const size_t i = size_t(it - xs.begin()) - 1;
    QString v = QString::number(s.smooth[i], 'g', 5);
    if (alpha() < 1.0) v += QStringLiteral(" (raw %1)").arg(s.value[i], 0, 'g', 5);
    // The last point left of the cursor is not the value there when the curve stops short of it.
    const QString ends =
        i + 1 == xs.size() && xs.back() < x ? tr(" (ends before the cursor)") : QString();
    parts << QStringLiteral("<span style='color:%1'>■</span> %2: <b>%3</b> @ step %4%5")
                 .arg(color_of(id).name(), r->label.toHtmlEscaped(), v)
                 .arg(qint64(s.step[i]))
                 .arg(ends);
  }
  return parts.join(QStringLiteral(" &nbsp; "));
}

QColor CurvePlot::color_of(int64_t run_id) const {
  auto it = colors_.find(run_id);
  // Under a dark palette the darker palette entries are lightened until they stand out.
  return readable_on(it != colors_.end() ? it->second : CurveSet::color_for(run_id),
                     palette().color(QPalette::Base));
}

QString CurvePlot::readout_text() const {
  return readout_->text();
}

void CurvePlot::update_crosshair() {
  const double x = plot_->xAxis->pixelToCoord(cursor_px_);
  crosshair_->point1->setCoords(x, 0);
  crosshair_->point2->setCoords(x, 1);
  crosshair_->setVisible(true);
  readout_->setText(readout_at(x));
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void CurvePlot::hide_crosshair() {
  hovering_ = false;
  readout_->clear();
  if (!crosshair_->visible()) return;
  crosshair_->setVisible(false);
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void CurvePlot::on_mouse_move(QMouseEvent* event) {
  const QPointF pos = event->position();
  if (!plot_->axisRect()->rect().contains(pos.toPoint())) {
    hide_crosshair();
    return;
  }
  hovering_ = true;
  cursor_px_ = pos.x();
  update_crosshair();
}

bool CurvePlot::eventFilter(QObject* watched, QEvent* event) {
  if (watched == plot_ && event->type() == QEvent::Leave) hide_crosshair();
  return QWidget::eventFilter(watched, event);
}

bool CurvePlot::export_image(const QString& path, int width, int height, bool paper,
                             QString* error) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (suffix != QLatin1String("png") && suffix != QLatin1String("pdf") &&
      suffix != QLatin1String("svg")) {
    if (error) *error = tr("Unknown image type \"%1\": use .png, .pdf or .svg.").arg(suffix);
    return false;
  }
  // Paper style applies only to the exported file; the screen styling is restored afterwards.
  const QFont saved_tick = plot_->xAxis->tickLabelFont();
  const QFont saved_label = plot_->xAxis->labelFont();
  const QFont saved_legend = plot_->legend->font();
  const bool cross = crosshair_->visible();
  const bool hovering = hovering_;
  hovering_ = false;  // the rebuilds below must not put the crosshair into the file
  crosshair_->setVisible(false);
  if (paper) {
    paper_ = true;
    const QFont serif(QStringLiteral("DejaVu Serif"), 9);
    for (QCPAxis* a : {plot_->xAxis, plot_->yAxis}) {
      a->setTickLabelFont(serif);
      a->setLabelFont(QFont(serif.family(), 10));
    }
    plot_->legend->setFont(QFont(serif.family(), 8));
    apply_plot_theme(plot_, light_palette());  // a paper figure is black on white
    rebuild();
  }
  bool ok = true;
  if (suffix == QLatin1String("png")) {
    ok = plot_->savePng(path, width, height);
  } else if (suffix == QLatin1String("pdf")) {
    ok = plot_->savePdf(path, width, height);
  } else {
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(QSize(width, height));
    gen.setViewBox(QRect(0, 0, width, height));
    gen.setTitle(metric_);
    gen.setDescription(tr("MoE-Mamba Lab curve export"));
    QCPPainter painter;
    ok = painter.begin(&gen);
    if (ok) {
      plot_->toPainter(&painter, width, height);
      painter.end();
    }
  }
  if (paper) {
    paper_ = false;
    for (QCPAxis* a : {plot_->xAxis, plot_->yAxis}) {
      a->setTickLabelFont(saved_tick);
      a->setLabelFont(saved_label);
    }
    plot_->legend->setFont(saved_legend);
    apply_plot_theme(plot_, palette());
    rebuild();
  }
  hovering_ = hovering;
  crosshair_->setVisible(cross);
  plot_->replot(QCustomPlot::rpQueuedReplot);
  ok = ok && QFileInfo(path).size() > 0;
  if (!ok && error) *error = tr("Could not write %1: check that its folder is writable.").arg(path);
  return ok;
}

bool CurvePlot::export_csv(const QString& path, QString* error) {
  QString text;
  QTextStream out(&text);
  // `smoothed` is the debiased EMA of `value` with the row's `alpha` (the chart's, auto or not).
  out << "run_id,run,metric,step,tokens,wall,value,smoothed,alpha\n";
  const double alpha = this->alpha();
  const QString alpha_text = QString::number(alpha, 'g', 10);
  const std::string metric = metric_.toStdString();
  const QCPRange vis = plot_->xAxis->range();
  for (int64_t id : runs_) {
    Series& s = curves_->series(id, metric);
    const RunCurves* r = curves_->find(id);
    s.update_smooth(alpha);
    const std::vector<double>* xp = curves_->x_of(id, s, x_axis_);
    if (!xp) continue;
    const std::vector<double>& xs = *xp;
    for (size_t i = 0; i < s.size(); ++i) {
      if (xs[i] < vis.lower || xs[i] > vis.upper) continue;
      out << id << ',' << csv_field(r->label) << ',' << metric_ << ',' << qint64(s.step[i]) << ','
          << qint64(s.tokens[i]) << ',' << QString::number(s.wall[i], 'g', 10) << ','
          << QString::number(s.value[i], 'g', 10) << ',' << QString::number(s.smooth[i], 'g', 10)
          << ',' << alpha_text << '\n';
    }
  }
  out.flush();
  // The one file writer: the old file or the whole export, a full disk told as such.
  try {
    write_file_atomically(path.toStdString(), text.toStdString());
  } catch (const UserError& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  return true;
}

}  // namespace mmlab::ui
