// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/metric_names.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace mmlab::metric {
namespace {

TEST(MetricNames, AnExpertLoadNameReadsBackAsItsLayerAndExpert) {
  EXPECT_EQ(expert_load(3, 17), "expert_load/3/17");
  std::string layer;
  int expert = -1;
  ASSERT_TRUE(parse_expert_load(expert_load(3, 17), layer, expert));
  EXPECT_EQ(layer, "3");
  EXPECT_EQ(expert, 17);
}

TEST(MetricNames, OtherAndMalformedNamesAreNoExpertLoad) {
  for (const char* name :
       {"dropped_frac/3", "expert_load/", "expert_load/3", "expert_load//2", "expert_load/3/",
        "expert_load/3/x", "expert_load/3/2x", "expert_load/3/-1", "loss"}) {
    std::string layer = "untouched";
    int expert = -7;
    EXPECT_FALSE(parse_expert_load(name, layer, expert)) << name;
    EXPECT_EQ(layer, "untouched") << name;
    EXPECT_EQ(expert, -7) << name;
  }
}

TEST(MetricNames, TheCurvesAreDistinctAndKnownAndNothingElseIs) {
  std::set<std::string_view> seen;
  for (std::string_view name : kCurves) {
    EXPECT_TRUE(seen.insert(name).second) << name << " is listed twice";
    EXPECT_TRUE(is_known(name)) << name;
  }
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_TRUE(is_known(kUnigramEntropy));
  EXPECT_TRUE(is_known("expert_load/0/3"));
  EXPECT_FALSE(is_known("losss"));
  EXPECT_FALSE(is_known("expert_load/0"));
}

}  // namespace
}  // namespace mmlab::metric
