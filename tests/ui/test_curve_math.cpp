// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ui/curve_data.h"
#include "ui/curve_math.h"

using namespace mmlab::ui;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

TEST(Series, SmoothingDecaysSparsePointsByTheirStepGap) {
  // α = 0.5; x = 2 at step 1, x = 4 at step 3: the EMA sees a gap of 2 steps (26/7, as in
  // tests/core/results/ema_test.cpp), not 1 (which would give 2.5 / 0.75).
  Series s;
  s.append(1, 0, 0, 2);
  s.append(3, 0, 0, 4);
  s.update_smooth(0.5);
  EXPECT_DOUBLE_EQ(s.smooth[1], 26.0 / 7.0);
}

TEST(XGrid, BucketsAreClampedAndEqualWidth) {
  XGrid g{0, 10, 5};
  EXPECT_EQ(g.bucket(-3), 0);
  EXPECT_EQ(g.bucket(0), 0);
  EXPECT_EQ(g.bucket(1.99), 0);
  EXPECT_EQ(g.bucket(2), 1);
  EXPECT_EQ(g.bucket(9.99), 4);
  EXPECT_EQ(g.bucket(10), 4);
  EXPECT_EQ(g.bucket(kNaN), 0);
  // Log grid over [1, 1000] in 3 buckets: decades.
  XGrid lg{1, 1000, 3, true};
  EXPECT_EQ(lg.bucket(5), 0);
  EXPECT_EQ(lg.bucket(10.5), 1);
  EXPECT_EQ(lg.bucket(99), 1);
  EXPECT_EQ(lg.bucket(101), 2);
  EXPECT_EQ(lg.bucket(0), 0);
}

TEST(MinMaxDownsample, KeepsFirstMinMaxLastPerBucketAndASingleStepSpike) {
  // 12 points at x = 0..11 on 3 buckets of width 4 over [0, 12).
  std::vector<double> x, y;
  for (int i = 0; i < 12; ++i) {
    x.push_back(i);
    y.push_back(10 - 0.1 * i);
  }
  y[6] = 50;  // a one-step spike in bucket 1
  y[9] = -1;  // a dip in bucket 2
  std::vector<double> ox, oy;
  minmax_downsample(x.data(), y.data(), x.size(), XGrid{0, 12, 3}, ox, oy);
  // Bucket 0 (x 0..3): first=max=0, min=last=3.  Bucket 1 (4..7): first=4, max=6, min=last=7.
  // Bucket 2 (8..11): first=max=8, min=9, last=11.
  EXPECT_EQ(ox, (std::vector<double>{0, 3, 4, 6, 7, 8, 9, 11}));
  EXPECT_EQ(oy, (std::vector<double>{y[0], y[3], y[4], 50, y[7], y[8], -1, y[11]}));
}

TEST(MinMaxDownsample, ZoomedRangeKeepsOneNeighbourOnEachSideAndSkipsNaN) {
  std::vector<double> x{0, 1, 2, 3, 4, 5, 6};
  std::vector<double> y{1, kNaN, 3, 4, 5, kNaN, 7};
  std::vector<double> ox, oy;
  // Visible [2, 4] on 8 buckets: every point its own bucket. Left neighbour of x=2 is x=0 (x=1
  // is NaN); right neighbour of x=4 is x=6.
  minmax_downsample(x.data(), y.data(), x.size(), XGrid{2, 4, 8}, ox, oy);
  EXPECT_EQ(ox, (std::vector<double>{0, 2, 3, 4, 6}));
  EXPECT_EQ(oy, (std::vector<double>{1, 3, 4, 5, 7}));
}

TEST(MinMaxDownsample, SharedGridAlignsRunsWithDifferentSamplingAndBoundsOutput) {
  // 100k points reduce to at most 4 per bucket; the spike at the single step 77777 survives.
  const int n = 100000;
  std::vector<double> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = i + 1;
    y[i] = 3.0 + std::sin(i * 0.01);
  }
  y[77776] = 1e6;
  std::vector<double> ox, oy;
  XGrid g{1, double(n), 500};
  minmax_downsample(x.data(), y.data(), n, g, ox, oy);
  EXPECT_LE(ox.size(), 4u * 500u);
  EXPECT_GE(ox.size(), 2u * 500u);
  bool spike = false;
  for (size_t i = 0; i < ox.size(); ++i) spike |= (ox[i] == 77777 && oy[i] == 1e6);
  EXPECT_TRUE(spike);
  // Every emitted x is a real sample and output stays sorted.
  for (size_t i = 1; i < ox.size(); ++i) ASSERT_LT(ox[i - 1], ox[i]);
}

TEST(SeedBand, MeanAndMinMaxAtSharedSteps) {
  std::vector<double> xa{1, 2, 3}, ya{1, 2, 3};
  std::vector<double> xb{1, 2, 3}, yb{3, 4, 5};
  std::vector<double> xc{1, 3}, yc{0, 4};  // interpolated at x=2: 2
  Band b = seed_band({{&xa, &ya}, {&xb, &yb}, {&xc, &yc}});
  EXPECT_EQ(b.x, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(b.mean, (std::vector<double>{4.0 / 3, 8.0 / 3, 4}));
  EXPECT_EQ(b.lo, (std::vector<double>{0, 2, 3}));
  EXPECT_EQ(b.hi, (std::vector<double>{3, 4, 5}));
  EXPECT_EQ(b.n, (std::vector<int>{3, 3, 3}));
}

TEST(SeedBand, RunsContributeOnlyInsideTheirRangeAndCi95UsesStudentT) {
  std::vector<double> xa{1, 2, 3, 4}, ya{2, 2, 2, 2};
  std::vector<double> xb{1, 2}, yb{4, 6};
  Band b = seed_band({{&xa, &ya}, {&xb, &yb}}, BandKind::kCi95);
  ASSERT_EQ(b.x.size(), 4u);
  EXPECT_EQ(b.n, (std::vector<int>{2, 2, 1, 1}));
  // x=1: values 2, 4; mean 3, sd √2, half = 12.706·√2/√2 = 12.706.
  EXPECT_DOUBLE_EQ(b.mean[0], 3);
  EXPECT_NEAR(b.hi[0], 3 + 12.706, 1e-12);
  EXPECT_NEAR(b.lo[0], 3 - 12.706, 1e-12);
  // x=3: one run; band collapses onto the mean.
  EXPECT_DOUBLE_EQ(b.lo[2], 2);
  EXPECT_DOUBLE_EQ(b.hi[2], 2);
  EXPECT_DOUBLE_EQ(student_t975(2), 4.303);
  EXPECT_NEAR(student_t975(1000), 1.962, 1e-3);
}
