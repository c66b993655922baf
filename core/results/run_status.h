// SPDX-License-Identifier: GPL-3.0-or-later
// A run's status: the one vocabulary of the store's runs.status column, the trainer's result, the
// progress protocol's `status` events, the studio's run manager and `mmlab runs`, with the exit
// code of `mmlab train` that each end of a run gives (docs/cli.md).
#pragma once

#include <optional>
#include <string_view>

#include "core/util/error.h"

namespace mmlab {

/// Stored statuses (the CHECK constraint of runs.status) plus kLost, which is never stored: it is
/// derived at read time for a `running` run whose heartbeat is stale and whose process is gone.
enum class RunStatus { kQueued, kRunning, kStopped, kFinished, kFailed, kDiverged, kLost };

/// Every status, in the order above (for lists the user picks from).
inline constexpr RunStatus kAllRunStatuses[] = {
    RunStatus::kQueued, RunStatus::kRunning,  RunStatus::kStopped, RunStatus::kFinished,
    RunStatus::kFailed, RunStatus::kDiverged, RunStatus::kLost};

/// "queued", "running", …, "lost".
std::string_view to_string(RunStatus status);
/// The status a word names, or nullopt for any other text.
std::optional<RunStatus> find_run_status(std::string_view text);
/// The inverse of to_string; an unknown word is a UserError listing the valid ones.
RunStatus parse_run_status(std::string_view text);
/// True for stopped/finished/failed/diverged (the run has an end time).
bool is_terminal(RunStatus status);

/// The exit code of `mmlab train` for a run that ended with `status`: 0 for finished and stopped,
/// kExitDiverged for diverged, kExitFailure otherwise (a failure caused by bad input or a missing
/// resource exits with that error's own code instead).
ExitCode exit_code_of(RunStatus status);

/// How a trainer that exited normally with `exit_code` ended: 0 is finished, or stopped when
/// `stopped` (the trainer said so, or it was asked to); kExitDiverged is diverged; every other
/// code is failed.
RunStatus status_of_exit(int exit_code, bool stopped);

}  // namespace mmlab
