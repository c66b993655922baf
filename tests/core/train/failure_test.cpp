// SPDX-License-Identifier: GPL-3.0-or-later
// What a user reads when something other than their input fails: a sentence naming what mmlab
// was doing, never the library's own text.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/train/failure.h"
#include "core/util/error.h"

namespace mmlab {
namespace {

TEST(DescribeFailure, TensorLibraryErrorsAreNamedWithoutTheirInternals) {
  try {
    (void)torch::ones({2, 3}).view({7});  // a shape error from inside LibTorch
    FAIL() << "expected LibTorch to throw";
  } catch (const std::exception& e) {
    ASSERT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
    const std::string m = describe_failure(e, "training step 12");
    EXPECT_NE(m.find("while training step 12"), std::string::npos) << m;
    EXPECT_NE(m.find("MMLAB_DEBUG=1"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.find("shape"), std::string::npos) << m;
    EXPECT_EQ(m.find("Exception raised"), std::string::npos) << m;
  }
}

TEST(DescribeFailure, FileErrorsNameThePathAndTheSystemsReason) {
  const std::filesystem::filesystem_error e("filesystem error: cannot create directories",
                                            "/no/such/place",
                                            std::make_error_code(std::errc::permission_denied));
  const std::string m = describe_failure(e, "writing the checkpoint");
  EXPECT_NE(m.find("/no/such/place"), std::string::npos) << m;
  EXPECT_NE(m.find("ermission denied"), std::string::npos) << m;
  EXPECT_EQ(m.find("filesystem error"), std::string::npos) << m;
}

TEST(DescribeFailure, JsonErrorsAndUserErrors) {
  try {
    const auto j = nlohmann::json::parse("{");
    FAIL() << j.dump();
  } catch (const std::exception& e) {
    const std::string m = describe_failure(e, "reading the run config");
    EXPECT_EQ(m.find("parse_error"), std::string::npos) << m;
    EXPECT_NE(m.find("reading the run config"), std::string::npos) << m;
  }
  const UserError user("The file x is missing.", "Give another.");
  EXPECT_EQ(describe_failure(user, "anything"), "The file x is missing. Give another.");
}

}  // namespace
}  // namespace mmlab
