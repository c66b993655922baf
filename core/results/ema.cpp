// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/ema.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mmlab {

double DebiasedEma::update(double x, double steps) {
  if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
  steps = std::max(steps, 1.0);
  if (steps == 1) {
    raw_ = (1 - alpha_) * raw_ + alpha_ * x;
  } else {
    const double decay = std::pow(1 - alpha_, steps);
    raw_ = decay * raw_ + (1 - decay) * x;
  }
  steps_ += steps;
  last_ = x;
  return value();
}

double DebiasedEma::value() const {
  if (steps_ == 0) return 0;
  const double debias = 1 - std::pow(1 - alpha_, steps_);
  // α = 1 (no smoothing) gives debias 1; a tiny α with t = 1 can round it to 0.
  return debias > 0 ? raw_ / debias : last_;
}

std::vector<double> ema_debiased(const std::vector<double>& x, double alpha) {
  DebiasedEma ema(alpha);
  std::vector<double> out;
  out.reserve(x.size());
  for (double v : x) out.push_back(ema.update(v));
  return out;
}

double default_smoothing_alpha(int64_t steps) {
  const double time_constant = 0.05 * static_cast<double>(steps);
  return time_constant <= 1 ? 1.0 : std::clamp(1.0 / time_constant, 1e-4, 1.0);
}

}  // namespace mmlab
