// SPDX-License-Identifier: GPL-3.0-or-later
// The live curve chart: one metric of several runs on QCustomPlot. What it draws is a function of
// (curves, visible runs, metric, x axis, smoothing, visible range): every replot-timer tick (10 Hz)
// with new data or a new range recomputes the min/max reduction of the full-resolution series for
// the visible range (plus one screen each side, so a pan never exposes undrawn data) and queues a
// replot (rpQueuedReplot), so a flood of events costs at most ten redraws a second.
//
// Mouse: drag pans; Shift+drag or right-drag draws a zoom box; the wheel zooms both axes over the
// plot, one axis over that axis or with Ctrl (x) / Shift (y); double-click fits all; Backspace or
// Alt+Left goes back in the zoom history. A vertical crosshair follows the cursor and the read-out
// under the chart lists every visible run's value there.
#pragma once

#include <QColor>
#include <QPointer>
#include <QString>
#include <QWidget>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "core/results/metric_names.h"
#include "ui/curve_data.h"

class QCustomPlot;
class QCPGraph;
class QCPItemStraightLine;
class QCPItemText;
class QComboBox;
class QCheckBox;
class QSlider;
class QDoubleSpinBox;
class QLabel;
class QTimer;
class QMouseEvent;
class QWheelEvent;

namespace mmlab::ui {

class CurvePlot : public QWidget {
  Q_OBJECT

 public:
  explicit CurvePlot(CurveSet* curves, QWidget* parent = nullptr);

  /// Runs shown, in legend order.
  void set_runs(const std::vector<int64_t>& runs);
  /// A sentence drawn in the middle while no run is shown (what to do to see curves).
  void set_empty_text(const QString& text);
  QString empty_text() const;
  bool empty_text_shown() const;
  const std::vector<int64_t>& runs() const { return runs_; }
  /// The colour a shown run is drawn in (pairwise different among the shown runs; a run keeps
  /// its own colour, CurveSet::color_for, unless an earlier shown run has it).
  QColor color_of(int64_t run_id) const;
  void set_metric(const QString& metric);
  QString metric() const { return metric_; }
  void set_x_axis(XAxis axis);
  XAxis x_axis() const { return x_axis_; }
  void set_log_x(bool on);
  void set_log_y(bool on);
  /// EMA α in the paper's terms (1 = raw, 0.001 = the paper's smoothing); turns auto off.
  void set_alpha(double alpha);
  /// Auto: α = default_smoothing_alpha of the longest shown run (its budget, else its last
  /// step), so a 300-step run is not drawn as its running mean.
  void set_auto_alpha(bool on);
  bool auto_alpha() const { return auto_alpha_; }
  /// The α the chart smooths with now (auto or the user's).
  double alpha() const;
  void set_show_raw(bool on);
  /// Draw runs of one seed group (same RunCurves::group) as a mean line with a band.
  void set_group_seeds(bool on);
  /// The band of a seed group: min–max (default) or a 95% confidence interval.
  void set_band_kind(BandKind kind);

  void fit_all();
  /// Returns to the previous zoom; false when the history is empty.
  bool zoom_back();
  size_t zoom_history_size() const { return history_.size(); }

  /// Recomputes the drawn (downsampled) data now; the replot timer does this on its own.
  void rebuild();
  /// Rebuilds when data arrived or the view left the reduced range or changed its zoom level
  /// (what the replot timer calls); returns whether it rebuilt.
  bool refine_if_needed();
  /// Points currently handed to QCustomPlot over all graphs.
  int points_drawn() const;
  /// The drawn smoothed curve of a run (key, value), for tests and the e2e check.
  std::vector<std::pair<double, double>> drawn(int64_t run_id) const;
  /// The read-out text at data coordinate x (what the crosshair shows). A run whose curve ends
  /// before x says so.
  QString readout_at(double x);
  /// What the read-out under the chart shows now: the values under the crosshair, recomputed
  /// whenever the data, the metric or the axes change while the cursor is over the chart, and
  /// empty once it leaves (a read-out never describes data that is no longer drawn).
  QString readout_text() const;

  /// PNG, PDF or SVG by the file's suffix, at w×h pixels (points for PDF/SVG). `paper` uses
  /// publication styling: white background, serif fonts, thicker lines, no raw curves.
  bool export_image(const QString& path, int width, int height, bool paper, QString* error);
  /// CSV of the shown curves at full resolution within the visible x range.
  bool export_csv(const QString& path, QString* error);

  QCustomPlot* plot() const { return plot_; }
  static const QStringList& standard_metrics();
  /// A count with a K/M/B suffix and up to four significant digits (the tokens axis' labels):
  /// 1500000 → "1.5M".
  static QString count_label(double n);

 Q_SIGNALS:
  void metricChanged(const QString& metric);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;
  void changeEvent(QEvent* event) override;

 private:
  void on_tick();
  void on_mouse_move(QMouseEvent* event);
  void on_mouse_press(QMouseEvent* event);
  void on_wheel(QWheelEvent* event);
  void push_history();
  void refresh_metric_list();
  void apply_axis_types();
  /// One axis's log scale: its flag, its checkbox (without echoing the toggle) and a refit.
  void set_log_scale(bool on, bool& flag, QCheckBox* box);
  /// Log x in effect: the user's choice, except on the wall-clock axis (dates are linear).
  bool log_x() const { return log_x_ && x_axis_ != XAxis::kWallClock; }
  QCPGraph* take_graph(size_t& index);
  void mark_dirty() { dirty_ = true; }
  void on_x_range_changed();
  /// Places the crosshair at the cursor's pixel column and recomputes the read-out there.
  void update_crosshair();
  void hide_crosshair();
  std::pair<double, double> y_range_of(double x_lo, double x_hi) const;

  CurveSet* curves_;
  QCustomPlot* plot_ = nullptr;
  QComboBox* metric_box_ = nullptr;
  QComboBox* axis_box_ = nullptr;
  QCheckBox* log_x_box_ = nullptr;
  QCheckBox* log_y_box_ = nullptr;
  QCheckBox* raw_box_ = nullptr;
  QCheckBox* group_box_ = nullptr;
  QComboBox* band_box_ = nullptr;
  QSlider* alpha_slider_ = nullptr;       // TensorBoard's weight 1 - α, ×10000
  QDoubleSpinBox* weight_box_ = nullptr;  // the same weight as a number
  QCheckBox* auto_alpha_box_ = nullptr;
  QLabel* alpha_label_ = nullptr;
  QLabel* readout_ = nullptr;
  QTimer* timer_ = nullptr;
  QCPItemStraightLine* crosshair_ = nullptr;
  QCPItemText* empty_text_ = nullptr;

  std::vector<int64_t> runs_;
  std::map<int64_t, QColor> colors_;  // of runs_
  QString metric_ = QString::fromLatin1(metric::kLoss);
  XAxis x_axis_ = XAxis::kStep;
  bool log_x_ = false;
  bool log_y_ = false;
  double alpha_ = 0.001;  // the user's α (auto off)
  bool auto_alpha_ = true;
  void show_smoothing();
  bool show_raw_ = true;
  bool group_seeds_ = false;
  BandKind band_kind_ = BandKind::kMinMax;
  bool paper_ = false;
  bool dirty_ = true;
  // What the last rebuild reduced: x range, visible span and plot width it was made for.
  double built_lo_ = 0, built_hi_ = 0, built_span_ = 0;
  int built_px_ = 0;
  bool autofit_ = true;  // follow new data until the user zooms or pans
  // The cursor over the chart, as a pixel column: after a pan, a zoom or an axis change the data
  // x under it is another one.
  bool hovering_ = false;
  double cursor_px_ = 0;
  qint64 last_wheel_push_ms_ = 0;
  struct Ranges {
    double x0, x1, y0, y1;
  };
  std::vector<Ranges> history_;
  std::vector<std::pair<int64_t, QCPGraph*>> smooth_graphs_;
};

}  // namespace mmlab::ui
