// SPDX-License-Identifier: GPL-3.0-or-later
// Faults the fault tests inject at named moments (tests/e2e/resume_faults_test.cpp), so that a
// kill lands exactly inside a checkpoint write or the final evaluation instead of wherever a
// timer happens to fall:
//   MMLAB_TEST_KILL_AT=NAME[:N]  the N-th (default first) pass through fault_point(NAME) SIGKILLs
//                                the process;
//   MMLAB_TEST_STOP_AT=NAME[:N]  the same pass SIGSTOPs it instead: a process that hangs alive;
//   MMLAB_TEST_FAULT_RANK=R      both apply only to the process whose RANK is R (data parallel);
//   MMLAB_TEST_NAN_AT=STEP       nan_fault_at(STEP) is true: the trainer then overwrites a weight
//                                with NaN after that step's update, as an overflowing step would.
// Active only in builds with MMLAB_TESTS (MMLAB_FAULT_POINTS, set for fault_point.cpp's library);
// without the variables they do nothing.
#pragma once

#include <cstdint>

namespace mmlab {

// Declared alike in every build, so a caller outside core/train (the CLI's start-up) needs no
// build flag of its own; without MMLAB_FAULT_POINTS they are empty functions.
void fault_point(const char* name);
bool nan_fault_at(int64_t step);

}  // namespace mmlab
