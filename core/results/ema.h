// SPDX-License-Identifier: GPL-3.0-or-later
// The debiased exponential moving average of a loss curve, in the paper's terms:
//   s_t = (1-α) s_{t-1} + α x_t with s_0 = 0, reported as s_t / (1 - (1-α)^t),
// so early values are not biased towards zero. The trainer records its `loss_smooth` with it and
// the studio smooths any curve with it, so both mean the same thing by "smoothed".
#pragma once

#include <cstdint>
#include <vector>

namespace mmlab {

/// Incremental debiased EMA. α is per training step: a value `steps` after the previous one
/// decays the state by (1-α)^steps, so sparse curves (validation every 100 steps) are smoothed
/// over the same number of steps as dense ones. NaN inputs are skipped (they yield NaN and leave
/// the state alone), so one diverged point does not poison the rest of a smoothed curve.
class DebiasedEma {
 public:
  explicit DebiasedEma(double alpha) : alpha_(alpha) {}
  /// Adds `x`, seen `steps` training steps after the previous value; returns value().
  double update(double x, double steps = 1);
  /// The debiased average (0 before the first value).
  double value() const;
  double alpha() const { return alpha_; }

  // The state a checkpoint keeps: the biased average and the steps it has seen.
  double raw() const { return raw_; }
  double steps() const { return steps_; }
  void restore(double raw, double steps) {
    raw_ = raw;
    steps_ = steps;
  }

 private:
  double alpha_;
  double raw_ = 0;
  double steps_ = 0;
  double last_ = 0;  // the latest value, for a debias factor that rounds to 0 (α → 0)
};

/// The debiased EMA of every point of `x` (same length), one step apart.
std::vector<double> ema_debiased(const std::vector<double>& x, double alpha);

/// The smoothing a chart starts with for runs of `steps` steps: a time constant (1/α steps) of
/// 5% of the run, so the smoothed curve of a 300-step run follows it within ~15 steps while the
/// paper's α = 0.001 suits its 100k-step runs (a 300-step curve would be its running mean).
/// Between 1e-4 and 1 (raw for runs of 20 steps or fewer).
double default_smoothing_alpha(int64_t steps);

}  // namespace mmlab
