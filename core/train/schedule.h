// SPDX-License-Identifier: GPL-3.0-or-later
// Learning-rate schedule (linear warmup, cosine decay to a floor) and the debiased EMA used for the
// smoothed loss, both as in the paper's code.
#pragma once

#include <cstdint>

#include "core/config/config.h"

namespace mmlab {

/// Learning rate for optimizer step `step` (1-based) of `total`: linear from lr/warmup to lr over
/// ceil(warmup_frac * total) steps, then cosine from lr down to final_lr_frac * lr at `total`.
double learning_rate(const TrainConfig& c, int64_t step, int64_t total);

/// s_t = (1 - alpha) s_{t-1} + alpha x_t with s_0 = 0, reported as s_t / (1 - (1 - alpha)^t) so
/// early values are not biased towards zero.
class DebiasedEma {
 public:
  explicit DebiasedEma(double alpha) : alpha_(alpha) {}
  double update(double x);
  double value() const;
  int64_t count() const { return count_; }
  // Checkpointed state.
  double raw() const { return raw_; }
  void restore(double raw, int64_t count) {
    raw_ = raw;
    count_ = count;
  }

 private:
  double alpha_;
  double raw_ = 0;
  int64_t count_ = 0;
};

}  // namespace mmlab
