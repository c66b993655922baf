// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/kernel_profile.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/util/error.h"
#include "tests/test_support.h"

namespace mmlab::cli {
namespace {

nlohmann::json event(const std::string& cat, const std::string& name, double dur) {
  return {{"ph", "X"}, {"cat", cat}, {"name", name}, {"ts", 0}, {"dur", dur}};
}

TEST(KernelProfile, SumsEventsOfTheCategoryByNameMostTimeFirst) {
  nlohmann::json trace = {{"traceEvents",
                           {event("kernel", "gemm", 300), event("Kernel", "scan", 500),
                            event("kernel", "gemm", 400), event("cpu_op", "aten::mm", 9000),
                            nlohmann::json{{"cat", "kernel"}, {"name", "no duration"}}}}};
  const ProfileSummary s = summarise_trace(trace, "kernel");
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.entries[0].name, "gemm");
  EXPECT_DOUBLE_EQ(s.entries[0].total_us, 700);
  EXPECT_EQ(s.entries[0].calls, 2);
  EXPECT_EQ(s.entries[1].name, "scan");
  EXPECT_DOUBLE_EQ(s.total_us, 1200);
}

TEST(KernelProfile, TableGivesShareAndPerStepFigures) {
  ProfileSummary s;
  s.what = "kernel";
  s.entries = {{"gemm", 3000, 4}, {"scan", 1000, 2}};
  s.total_us = 4000;
  const std::string table = format_profile(s, 2, 1);
  EXPECT_NE(table.find("kernel time per step 2.00 ms in 3 calls; top 1"), std::string::npos)
      << table;
  EXPECT_NE(table.find(" 75.0%     1.500 ms     2.0 x  gemm"), std::string::npos) << table;
  EXPECT_EQ(table.find("scan"), std::string::npos) << table;
}

// LibTorch builds without Kineto (Debian's 1.13) must refuse in a sentence, not with c10's text.
TEST(KernelProfile, RecordsTheOperatorsOfACpuRunOrSaysTheLibTorchCannot) {
  test::TempDir dir;
  const auto trace = dir / "t.trace.json";
  const bool available = profiler_available(dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir / ".profiler-probe.trace.json"));
  KernelProfile profile(/*cuda=*/false);
  auto a = torch::randn({64, 64});
  for (int i = 0; i < 3; ++i) a = torch::mm(a, a).tanh();
  if (!available) {
    try {
      profile.finish(trace.string());
      FAIL() << "finish() recorded although the probe said it cannot";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("no trace profiler (Kineto)"), std::string::npos);
    }
    return;
  }
  const ProfileSummary s = profile.finish(trace.string());
  ASSERT_TRUE(std::filesystem::exists(trace));
  bool saw_mm = false;
  for (const auto& e : s.entries) saw_mm = saw_mm || (e.name == "aten::mm" && e.calls == 3);
  EXPECT_TRUE(saw_mm) << format_profile(s, 1, 20);
}

}  // namespace
}  // namespace mmlab::cli
