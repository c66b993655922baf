// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <cmath>

#include "core/train/progress.h"
#include "core/train/schedule.h"

namespace mmlab {
namespace {

TEST(Schedule, LinearWarmupThenCosineToTheFloor) {
  TrainConfig c;
  c.lr = 1e-3;
  c.warmup_frac = 0.01;
  c.final_lr_frac = 0.1;
  // 1000 steps: warmup 10 steps.
  EXPECT_NEAR(learning_rate(c, 1, 1000), 1e-4, 1e-12);
  EXPECT_NEAR(learning_rate(c, 5, 1000), 5e-4, 1e-12);
  EXPECT_NEAR(learning_rate(c, 10, 1000), 1e-3, 1e-12);
  // Halfway through the cosine part: floor + (lr - floor) / 2.
  EXPECT_NEAR(learning_rate(c, 505, 1000), 1e-4 + 0.9e-3 * 0.5, 1e-9);
  EXPECT_NEAR(learning_rate(c, 1000, 1000), 1e-4, 1e-12);
  // Monotone after warmup.
  for (int s = 11; s < 1000; ++s)
    EXPECT_LE(learning_rate(c, s + 1, 1000), learning_rate(c, s, 1000));
}

TEST(Schedule, WarmupRoundsUpToWholeSteps) {
  TrainConfig c;
  c.lr = 2.0;
  c.warmup_frac = 0.01;
  EXPECT_NEAR(learning_rate(c, 1, 150), 1.0, 1e-12);  // ceil(1.5) = 2 warmup steps
  EXPECT_NEAR(learning_rate(c, 2, 150), 2.0, 1e-12);
}

}  // namespace
}  // namespace mmlab
