// SPDX-License-Identifier: GPL-3.0-or-later
// The numerics behind the curve views, free of Qt so they can be tested against hand-computed
// values:
//  - Smoothing (core/results/ema.h) runs on full-resolution data: smoothing after downsampling
//    (what TensorBoard does) changes the curve with the zoom level; this does not.
//  - Min/max (M4) downsampling onto one x grid shared by every run of a chart: each bucket keeps
//    its first, minimum, maximum and last point, so a one-step spike survives any zoom level and
//    runs stay comparable bucket by bucket. Recomputed for the visible range on zoom.
//  - Seed groups: mean with a min–max or 95% confidence band.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mmlab::ui {

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
