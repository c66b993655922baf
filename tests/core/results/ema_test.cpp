// SPDX-License-Identifier: GPL-3.0-or-later
// The debiased EMA against hand-computed values: the trainer's loss_smooth and the studio's
// smoothing are this one class.
#include "core/results/ema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace mmlab {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(DebiasedEma, ValuesMatchHandComputation) {
  // α = 0.5, x = 2, 4, 8: s = 1, 2.5, 5.25; 1-(1-α)^t = 0.5, 0.75, 0.875.
  auto s = ema_debiased({2, 4, 8}, 0.5);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_DOUBLE_EQ(s[0], 2.0);
  EXPECT_DOUBLE_EQ(s[1], 2.5 / 0.75);
  EXPECT_DOUBLE_EQ(s[2], 6.0);
  DebiasedEma ema(0.1);
  EXPECT_DOUBLE_EQ(ema.update(2.0), 2.0);  // (0.1*2) / (1-0.9)
  const double raw2 = 0.9 * 0.2 + 0.1 * 4.0;
  EXPECT_NEAR(ema.update(4.0), raw2 / (1 - 0.81), 1e-12);
}

TEST(DebiasedEma, RestoredStateContinuesTheSameCurve) {
  DebiasedEma ema(0.1);
  ema.update(2.0);
  ema.update(4.0);
  DebiasedEma again(0.1);
  again.restore(ema.raw(), ema.steps());
  EXPECT_EQ(again.steps(), 2.0);
  EXPECT_NEAR(again.update(1.0), ema.update(1.0), 1e-15);
  EXPECT_EQ(DebiasedEma(0.1).value(), 0.0);  // nothing seen yet
}

TEST(DebiasedEma, PaperAlphaStartsAtTheFirstValueAndMovesSlowly) {
  // α = 0.001: the first debiased value is x_1 itself; after a jump from 10 to 0 at t = 2 the
  // value is (0.999·0.001·10) / (1 - 0.999²) = 0.00999 / 0.001999.
  auto s = ema_debiased({10, 0}, 0.001);
  EXPECT_NEAR(s[0], 10.0, 1e-12);
  EXPECT_NEAR(s[1], 0.00999 / 0.001999, 1e-12);
  // A constant series stays constant at every t (what debiasing is for).
  auto c = ema_debiased(std::vector<double>(5000, 3.25), 0.001);
  for (double v : c) ASSERT_NEAR(v, 3.25, 1e-9);
}

TEST(DebiasedEma, AlphaOneIsTheRawCurveAndNaNIsSkipped) {
  auto s = ema_debiased({1, 5, 3}, 1.0);
  EXPECT_EQ(s, (std::vector<double>{1, 5, 3}));
  auto n = ema_debiased({2, kNaN, 4}, 0.5);
  EXPECT_DOUBLE_EQ(n[0], 2.0);
  EXPECT_TRUE(std::isnan(n[1]));
  EXPECT_DOUBLE_EQ(n[2], 2.5 / 0.75);  // as if the NaN step was absent
}

TEST(DebiasedEma, AlphaIsPerStepSoSparsePointsDecayByTheirGap) {
  // α = 0.5; x = 2 at step 1, x = 4 at step 3 (gap 2: d = 0.25):
  // s = 1 then 0.25·1 + 0.75·4 = 3.25; decay 0.5·0.25 = 0.125 → 3.25 / 0.875 = 26/7.
  DebiasedEma e(0.5);
  EXPECT_DOUBLE_EQ(e.update(2, 1), 2.0);
  EXPECT_DOUBLE_EQ(e.update(4, 2), 26.0 / 7.0);
  EXPECT_EQ(e.steps(), 3.0);
}

}  // namespace
}  // namespace mmlab
