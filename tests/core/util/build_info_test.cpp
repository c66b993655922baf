// SPDX-License-Identifier: GPL-3.0-or-later
// The revision a run records (how it is read at build time: tests/build/git_rev_test.cmake).
#include "core/util/build_info.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace mmlab {
namespace {

TEST(BuildInfo, TheRevisionIsTwelveHexDigitsOrUnknown) {
  const std::string rev(git_revision());
  EXPECT_TRUE(std::regex_match(rev, std::regex("[0-9a-f]{12}")) || rev == "unknown") << rev;
}

}  // namespace
}  // namespace mmlab
