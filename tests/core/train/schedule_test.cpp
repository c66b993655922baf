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

TEST(DebiasedEma, MatchesHandComputedValues) {
  DebiasedEma ema(0.1);
  EXPECT_DOUBLE_EQ(ema.update(2.0), 2.0);  // (0.1*2) / (1-0.9)
  const double raw2 = 0.9 * 0.2 + 0.1 * 4.0;
  EXPECT_NEAR(ema.update(4.0), raw2 / (1 - 0.81), 1e-12);
  DebiasedEma again(0.1);
  again.restore(ema.raw(), ema.count());
  EXPECT_NEAR(again.update(1.0), ema.update(1.0), 1e-15);
}

TEST(Progress, LineFollowsTheProtocolAndWritesNanAsNull) {
  nlohmann::json fields = {{"step", 3}, {"metrics", {{"loss", NAN}, {"lr", 0.5}}}};
  auto line = nlohmann::json::parse(progress_line("step", 7, 1.5, fields));
  EXPECT_EQ(line["event"], "step");
  EXPECT_EQ(line["run_id"], 7);
  EXPECT_EQ(line["wall"], 1.5);
  EXPECT_EQ(line["step"], 3);
  EXPECT_TRUE(line["metrics"]["loss"].is_null());
  EXPECT_EQ(line["metrics"]["lr"], 0.5);
}

}  // namespace
}  // namespace mmlab
