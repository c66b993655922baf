// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/curve_math.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace mmlab::ui {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

double Ema::push(double x, double steps) {
  if (std::isnan(x)) return kNaN;
  const double d = steps == 1 ? 1 - alpha_ : std::pow(1 - alpha_, std::max(steps, 1.0));
  s_ = d * s_ + (1 - d) * x;
  decay_ *= d;
  const double debias = 1 - decay_;
  // α = 1 (no smoothing) gives debias 1; α → 0 with t = 1 gives debias = α > 0, never 0.
  return debias > 0 ? s_ / debias : x;
}

std::vector<double> ema_debiased(const std::vector<double>& x, double alpha) {
  Ema ema(alpha);
  std::vector<double> out;
  out.reserve(x.size());
  for (double v : x) out.push_back(ema.push(v));
  return out;
}

double default_smoothing_alpha(int64_t steps) {
  const double time_constant = 0.05 * double(steps);
  return time_constant <= 1 ? 1.0 : std::clamp(1.0 / time_constant, 1e-4, 1.0);
}

int XGrid::bucket(double x) const {
  if (!(hi > lo) || buckets <= 1) return 0;
  double f;
  if (log) {
    if (!(x > 0) || !(lo > 0)) return 0;
    f = std::log10(x / lo) / std::log10(hi / lo) * buckets;
  } else {
    f = (x - lo) / (hi - lo) * buckets;
  }
  if (!(f > 0)) return 0;  // also NaN
  int b = static_cast<int>(f);
  return std::min(b, buckets - 1);
}

void minmax_downsample(const double* x, const double* y, size_t n, const XGrid& grid,
                       std::vector<double>& ox, std::vector<double>& oy) {
  if (n == 0) return;
  const size_t first = std::lower_bound(x, x + n, grid.lo) - x;
  const size_t last = std::upper_bound(x, x + n, grid.hi) - x;  // one past the visible points

  auto emit = [&](size_t i) {
    ox.push_back(x[i]);
    oy.push_back(y[i]);
  };
  // The nearest non-NaN neighbour outside on the left, so the line enters from the edge.
  for (size_t i = first; i-- > 0;) {
    if (!std::isnan(y[i])) {
      emit(i);
      break;
    }
  }
  size_t i = first;
  while (i < last) {
    const int b = grid.bucket(x[i]);
    size_t i_first = n, i_min = n, i_max = n, i_last = n;
    for (; i < last && grid.bucket(x[i]) == b; ++i) {
      if (std::isnan(y[i])) continue;
      if (i_first == n) i_first = i_min = i_max = i;
      if (y[i] < y[i_min]) i_min = i;
      if (y[i] > y[i_max]) i_max = i;
      i_last = i;
    }
    if (i_first == n) continue;
    std::array<size_t, 4> idx{i_first, i_min, i_max, i_last};
    std::sort(idx.begin(), idx.end());
    size_t prev = n;
    for (size_t k : idx) {
      if (k != prev) emit(k);
      prev = k;
    }
  }
  for (size_t k = last; k < n; ++k) {
    if (!std::isnan(y[k])) {
      emit(k);
      break;
    }
  }
}

double student_t975(int df) {
  static constexpr std::array<double, 30> kTable{
      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
      2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
      2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return kNaN;
  if (df <= 30) return kTable[df - 1];
  return 1.959964 + 2.4 / df;  // within 0.3% of the exact quantile beyond 30
}

namespace {

// Value of run (x, y) at position q by linear interpolation, NaN when q is outside its range.
// `cursor` walks forward with q (the caller visits q in increasing order).
double value_at(const std::vector<double>& x, const std::vector<double>& y, double q,
                size_t& cursor) {
  const size_t n = std::min(x.size(), y.size());
  if (n == 0 || q < x.front() || q > x[n - 1]) return kNaN;
  while (cursor + 1 < n && x[cursor + 1] <= q) ++cursor;
  if (x[cursor] == q || cursor + 1 >= n) return y[cursor];
  const double x0 = x[cursor], x1 = x[cursor + 1];
  const double t = (q - x0) / (x1 - x0);
  return y[cursor] + t * (y[cursor + 1] - y[cursor]);
}

}  // namespace

Band seed_band(const std::vector<XY>& runs, BandKind kind) {
  Band band;
  std::vector<double> xs;
  for (const XY& r : runs) xs.insert(xs.end(), r.x->begin(), r.x->end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());

  std::vector<size_t> cursors(runs.size(), 0);
  std::vector<double> vals;
  for (double q : xs) {
    vals.clear();
    for (size_t r = 0; r < runs.size(); ++r) {
      double v = value_at(*runs[r].x, *runs[r].y, q, cursors[r]);
      if (!std::isnan(v)) vals.push_back(v);
    }
    if (vals.empty()) continue;
    double sum = 0;
    for (double v : vals) sum += v;
    const double mean = sum / vals.size();
    double lo, hi;
    if (kind == BandKind::kMinMax || vals.size() < 2) {
      auto [mn, mx] = std::minmax_element(vals.begin(), vals.end());
      lo = kind == BandKind::kMinMax ? *mn : mean;
      hi = kind == BandKind::kMinMax ? *mx : mean;
    } else {
      double ss = 0;
      for (double v : vals) ss += (v - mean) * (v - mean);
      const double sd = std::sqrt(ss / (vals.size() - 1));
      const double half = student_t975(static_cast<int>(vals.size()) - 1) * sd /
                          std::sqrt(static_cast<double>(vals.size()));
      lo = mean - half;
      hi = mean + half;
    }
    band.x.push_back(q);
    band.mean.push_back(mean);
    band.lo.push_back(lo);
    band.hi.push_back(hi);
    band.n.push_back(static_cast<int>(vals.size()));
  }
  return band;
}

}  // namespace mmlab::ui
