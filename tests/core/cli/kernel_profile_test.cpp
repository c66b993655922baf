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

nlohmann::json on_thread(int tid, const std::string& cat, const std::string& name, double ts,
                         double dur, nlohmann::json args = nlohmann::json::object()) {
  return {{"ph", "X"},  {"cat", cat}, {"name", name}, {"pid", 1},
          {"tid", tid}, {"ts", ts},   {"dur", dur},   {"args", std::move(args)}};
}

// Kineto's shape: a kernel and its runtime launch share a correlation id; the launch lies inside
// the host operators that made it, on its thread.
TEST(KernelProfile, KernelsAreSummedByTheOperatorsThatLaunchedThem) {
  using nlohmann::json;
  json trace = {
      {"traceEvents",
       {on_thread(1, "user_annotation", "ProfilerStep#1", -5, 1000),
        on_thread(1, "cpu_op", "ProfilerStep", -5, 1000),
        on_thread(1, "cpu_op", "autograd::engine::evaluate_function: ViewBackward0", 0, 100),
        on_thread(1, "cpu_op", "aten::reshape", 10, 50),
        on_thread(1, "cpu_op", "aten::clone", 12, 40),
        on_thread(1, "cpu_op", "aten::copy_", 15, 30, {{"Input Dims", {{4, 5}, {4, 5}}}}),
        on_thread(2, "cpu_op", "aten::add", 0, 1000),  // another thread: not around the launch
        on_thread(1, "cuda_runtime", "cudaLaunchKernel", 20, 5, {{"correlation", 7}}),
        on_thread(1, "cpu_op", "aten::mm", 200, 20, {{"Input Dims", {{2, 3}, {3, 4}}}}),
        on_thread(1, "cuda_runtime", "cudaLaunchKernel", 205, 2, {{"correlation", 8}}),
        on_thread(7, "kernel", "copy_kernel", 30, 300, {{"correlation", 7}}),
        on_thread(7, "kernel", "gemm", 400, 100, {{"correlation", 8}}),
        // Two operators one after the other: the second's launch is not the first's.
        on_thread(1, "cpu_op", "aten::zero_", 300, 10),
        on_thread(1, "cpu_op", "aten::fill_", 310, 10),
        on_thread(1, "cuda_runtime", "cudaLaunchKernel", 312, 1, {{"correlation", 10}}),
        on_thread(7, "kernel", "gemm", 600, 50, {{"correlation", 9}}),
        on_thread(7, "kernel", "fill", 700, 10, {{"correlation", 10}})}}};
  const ProfileSummary s = summarise_trace(trace, "kernel");
  ASSERT_EQ(s.entries.size(), 3u);
  ASSERT_EQ(s.launchers.size(), 4u);
  EXPECT_EQ(s.launchers[0].name,
            "autograd::engine::evaluate_function: ViewBackward0 > aten::reshape > aten::clone > "
            "aten::copy_ [[4,5],[4,5]]");  // the four innermost; ProfilerStep left out
  EXPECT_DOUBLE_EQ(s.launchers[0].total_us, 300);
  EXPECT_EQ(s.launchers[1].name, "ProfilerStep > aten::mm [[2,3],[3,4]]");
  EXPECT_DOUBLE_EQ(s.launchers[1].total_us, 100);
  EXPECT_EQ(s.launchers[2].name, "(no launch recorded)");
  EXPECT_EQ(s.launchers[2].calls, 1);
  EXPECT_EQ(s.launchers[3].name, "ProfilerStep > aten::fill_");
  const std::string table = format_profile(s, 1, 2);
  EXPECT_NE(table.find("launched by (the innermost operators around each launch), top 2:"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find(" 21.7%     0.100 ms     1.0 x  ProfilerStep > aten::mm [[2,3],[3,4]]"),
            std::string::npos)
      << table;
  // A CPU profile has no launches to attribute.
  EXPECT_TRUE(summarise_trace(trace, "cpu_op").launchers.empty());
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
