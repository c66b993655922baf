// SPDX-License-Identifier: GPL-3.0-or-later
// Per-layer expert load of a MoE run over training steps (metrics `expert_load/<layer>/<expert>`
// of docs/progress-protocol.md) as a heat map: x = step, y = expert, colour = share of tokens.
// Collapse (every token to one expert) and dead experts show up as bright and dark bands.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>
#include <cstdint>
#include <string>
#include <vector>

#include "ui/curve_data.h"

class QComboBox;
class QCustomPlot;
class QCPColorMap;
class QLabel;

namespace mmlab::ui {

class ExpertHeatmap : public QWidget {
  Q_OBJECT

 public:
  explicit ExpertHeatmap(CurveSet* curves, QWidget* parent = nullptr);
  /// Shows `run_id`, whose metric names are `metrics` (the expert_load/… ones are used).
  void set_run(int64_t run_id, const QString& label, const std::vector<std::string>& metrics);
  /// Layers found for the run ("1", "3", …).
  QStringList layers() const;
  /// Expert count and step columns of the map, and the value of one cell (tests).
  int experts() const { return experts_; }
  int columns() const { return columns_; }
  double cell(int column, int expert) const;

  /// Columns are averages over step ranges: at most this many (about one per pixel).
  static constexpr int kMaxColumns = 600;
  QCustomPlot* plot() const { return plot_; }

 protected:
  void changeEvent(QEvent* event) override;

 private:
  void rebuild();

  CurveSet* curves_;
  QCustomPlot* plot_ = nullptr;
  QCPColorMap* map_ = nullptr;
  QComboBox* layer_ = nullptr;
  QLabel* title_ = nullptr;
  int64_t run_id_ = -1;
  std::vector<std::string> metrics_;
  int experts_ = 0;
  int columns_ = 0;
};

}  // namespace mmlab::ui
