// SPDX-License-Identifier: GPL-3.0-or-later
// The one run-status vocabulary and its exit codes (docs/cli.md, docs/progress-protocol.md).
#include "core/results/run_status.h"

#include <gtest/gtest.h>

namespace mmlab {
namespace {

TEST(RunStatus, EveryStatusReadsBackFromItsWord) {
  for (RunStatus s : kAllRunStatuses) {
    EXPECT_EQ(parse_run_status(to_string(s)), s) << to_string(s);
    EXPECT_EQ(find_run_status(to_string(s)), s);
  }
  EXPECT_EQ(to_string(RunStatus::kDiverged), "diverged");
  EXPECT_EQ(find_run_status("done"), std::nullopt);
  try {
    parse_run_status("done");
    FAIL() << "no UserError";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "Unknown run status \"done\". Use one of queued, running, stopped, finished, "
              "failed, diverged, lost.");
  }
}

TEST(RunStatus, ExitCodesRoundTripThroughTheEndOfARun) {
  EXPECT_EQ(exit_code_of(RunStatus::kFinished), kExitOk);
  EXPECT_EQ(exit_code_of(RunStatus::kStopped), kExitOk);
  EXPECT_EQ(exit_code_of(RunStatus::kDiverged), kExitDiverged);
  EXPECT_EQ(exit_code_of(RunStatus::kFailed), kExitFailure);
  EXPECT_EQ(kExitDiverged, 5);  // documented in docs/cli.md: scripts depend on it
  for (RunStatus s :
       {RunStatus::kFinished, RunStatus::kStopped, RunStatus::kDiverged, RunStatus::kFailed}) {
    EXPECT_EQ(status_of_exit(exit_code_of(s), s == RunStatus::kStopped), s) << to_string(s);
  }
  // Failures from bad input or a missing resource have their own codes: still failed.
  EXPECT_EQ(status_of_exit(kExitBadInput, false), RunStatus::kFailed);
  EXPECT_EQ(status_of_exit(kExitNoResource, true), RunStatus::kFailed);
  EXPECT_TRUE(is_terminal(RunStatus::kDiverged));
  EXPECT_FALSE(is_terminal(RunStatus::kLost));
}

}  // namespace
}  // namespace mmlab
