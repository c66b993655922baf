// SPDX-License-Identifier: GPL-3.0-or-later
// The numerics behind the curve views, free of Qt so they can be tested against hand-computed
// values:
//  - EMA smoothing on full-resolution data, debiased (Adam-style), in the paper's terms:
//    s_t = (1-α) s_{t-1} + α x_t with s_0 = 0, shown as s_t / (1 - (1-α)^t). Smoothing after
//    downsampling (what TensorBoard does) changes the curve with the zoom level; this does not.
//  - Min/max (M4) downsampling onto one x grid shared by every run of a chart: each bucket keeps
//    its first, minimum, maximum and last point, so a one-step spike survives any zoom level and
//    runs stay comparable bucket by bucket. Recomputed for the visible range on zoom.
//  - Seed groups: mean with a min–max or 95% confidence band.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mmlab::ui {

/// Incremental debiased EMA; NaN inputs are skipped (they yield NaN and leave the state alone),
/// so one diverged step does not poison the rest of the smoothed curve. α is per training step:
/// a point `steps` after the previous one decays the state by (1-α)^steps, so sparse curves
/// (validation every 100 steps) are smoothed over the same number of steps as dense ones.
class Ema {
 public:
  explicit Ema(double alpha) : alpha_(alpha) {}
  double push(double x, double steps = 1);
  double alpha() const { return alpha_; }

 private:
  double alpha_;
  double s_ = 0;
  double decay_ = 1;  // (1-α)^t
};

/// The debiased EMA of every point of `x` (same length).
std::vector<double> ema_debiased(const std::vector<double>& x, double alpha);

/// The smoothing a chart starts with for runs of `steps` steps: a time constant (1/α steps) of
/// 5% of the run, so the smoothed curve of a 300-step run follows it within ~15 steps while the
/// paper's α = 0.001 suits its 100k-step runs (a 300-step curve would be its running mean).
/// Between 1e-4 and 1 (raw for runs of 20 steps or fewer).
double default_smoothing_alpha(int64_t steps);

/// Buckets of equal width over [lo, hi]: the one grid all runs of a chart are sampled on.
struct XGrid {
  double lo = 0;
  double hi = 1;
  int buckets = 1;
  /// Equal width in log10(x) (for a log x axis, where equal pixel widths are equal ratios).
  bool log = false;
  /// Bucket of x, clamped to [0, buckets-1].
  int bucket(double x) const;
};

/// Appends to (ox, oy) the M4 reduction of the points of (x, y) inside [grid.lo, grid.hi]: per
/// non-empty bucket the first, min, max and last point, in x order, without duplicates; NaN values
/// are left out. The nearest point on each side outside the range is kept too, so lines run to
/// the plot's edges. `x` must be non-decreasing.
void minmax_downsample(const double* x, const double* y, size_t n, const XGrid& grid,
                       std::vector<double>& ox, std::vector<double>& oy);

enum class BandKind { kMinMax, kCi95 };

struct Band {
  std::vector<double> x, mean, lo, hi;
  std::vector<int> n;  ///< runs contributing at x
};

struct XY {
  const std::vector<double>* x;
  const std::vector<double>* y;
};

/// The mean of several runs (seeds) at every x any of them has; a run contributes at x when x
/// lies within its own x range (linearly interpolated between its points, NaNs skipped).
/// kCi95 uses Student's t for the number of runs present (a band of ±t·s/√n).
Band seed_band(const std::vector<XY>& runs, BandKind kind = BandKind::kMinMax);

/// Two-sided 97.5% quantile of Student's t with `df` degrees of freedom.
double student_t975(int df);

}  // namespace mmlab::ui
