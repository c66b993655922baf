// SPDX-License-Identifier: GPL-3.0-or-later
// Learning-rate schedule (linear warmup, cosine decay to a floor), as in the paper's code. (The
// smoothed loss's EMA is core/results/ema.h.)
#pragma once

#include <cstdint>

#include "core/config/config.h"

namespace mmlab {

/// Learning rate for optimizer step `step` (1-based) of `total`: linear from lr/warmup to lr over
/// ceil(warmup_frac * total) steps, then cosine from lr down to final_lr_frac * lr at `total`.
double learning_rate(const TrainConfig& c, int64_t step, int64_t total);

}  // namespace mmlab
