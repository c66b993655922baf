// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/schedule.h"

#include <cmath>

namespace mmlab {

double learning_rate(const TrainConfig& c, int64_t step, int64_t total) {
  const int64_t warmup =
      static_cast<int64_t>(std::ceil(c.warmup_frac * static_cast<double>(total)));
  if (step <= warmup && warmup > 0) {
    return c.lr * static_cast<double>(step) / static_cast<double>(warmup);
  }
  const double span = static_cast<double>(std::max<int64_t>(total - warmup, 1));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  const double floor = c.final_lr_frac * c.lr;
  return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace mmlab
