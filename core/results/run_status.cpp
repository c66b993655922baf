// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/run_status.h"

#include <iterator>
#include <string>

namespace mmlab {

namespace {

// Index i of kStatusWords names kAllRunStatuses[i]; the stored ones match runs.status's CHECK.
constexpr std::string_view kStatusWords[] = {"queued", "running",  "stopped", "finished",
                                             "failed", "diverged", "lost"};
static_assert(std::size(kStatusWords) == std::size(kAllRunStatuses));

}  // namespace

std::string_view to_string(RunStatus status) {
  for (size_t i = 0; i < std::size(kAllRunStatuses); ++i) {
    if (kAllRunStatuses[i] == status) return kStatusWords[i];
  }
  return "unknown";
}

std::optional<RunStatus> find_run_status(std::string_view text) {
  for (size_t i = 0; i < std::size(kStatusWords); ++i) {
    if (kStatusWords[i] == text) return kAllRunStatuses[i];
  }
  return std::nullopt;
}

RunStatus parse_run_status(std::string_view text) {
  if (auto status = find_run_status(text)) return *status;
  std::string words;
  for (std::string_view w : kStatusWords) words += (words.empty() ? "" : ", ") + std::string(w);
  throw UserError("Unknown run status \"" + std::string(text) + "\".", "Use one of " + words + ".");
}

bool is_terminal(RunStatus status) {
  return status == RunStatus::kStopped || status == RunStatus::kFinished ||
         status == RunStatus::kFailed || status == RunStatus::kDiverged;
}

ExitCode exit_code_of(RunStatus status) {
  switch (status) {
    case RunStatus::kFinished:
    case RunStatus::kStopped:
      return kExitOk;
    case RunStatus::kDiverged:
      return kExitDiverged;
    default:
      return kExitFailure;
  }
}

RunStatus status_of_exit(int exit_code, bool stopped) {
  if (exit_code == exit_code_of(RunStatus::kFinished)) {
    return stopped ? RunStatus::kStopped : RunStatus::kFinished;
  }
  if (exit_code == exit_code_of(RunStatus::kDiverged)) return RunStatus::kDiverged;
  return RunStatus::kFailed;
}

}  // namespace mmlab
