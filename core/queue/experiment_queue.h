// SPDX-License-Identifier: GPL-3.0-or-later
// A launched experiment lives in the results database: every run gets its row (`queued`) the
// moment the experiment is launched, so closing the studio or stopping `mmlab train` never loses
// the runs that had not started. Launching an experiment that is already there continues it:
// finished runs are skipped, stopped/failed/lost ones resumed, queued ones started. A run of the
// same experiment and name whose config differs is refused (the experiment's name is what keeps
// results apart, so one name never mixes two budgets).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config/experiment.h"
#include "core/store/store.h"

namespace mmlab::queue {

/// What continuing an experiment does with one of its runs.
enum class RunAction {
  kStart,   ///< queued: train it from step 0
  kResume,  ///< stopped, failed or lost: continue from its last checkpoint
  kSkip,    ///< finished, diverged, or training in another process right now
};

struct QueuedRun {
  std::string name;
  int64_t run_id = 0;
  store::RunStatus status = store::RunStatus::kQueued;  ///< as found (effective status)
  RunAction action = RunAction::kStart;
  std::string device;  ///< the run's train.device
  std::string uuid;    ///< the row's uuid
};

struct LaunchPlan {
  std::string experiment;
  bool continuing = false;  ///< some of the runs were in the database already
  std::vector<QueuedRun> runs;

  /// Runs to train now (kStart or kResume), in the experiment's order.
  std::vector<QueuedRun> to_train() const;
  /// One line: "Continuing experiment X in DB: 1 finished run skipped, 2 queued runs started."
  std::string summary(const std::string& db) const;
};

/// Where the queued runs will train.
struct QueueOptions {
  /// Empty: here (the data sources are checked here). Else the host's name in the hosts file:
  /// the rows record it (RunRow::host) and the data sources are the host's to check.
  std::string host;
  /// The uuid of each new row, by run name (the rest get new ones): a run trained by another
  /// process into another database keeps the identity of the row queued here.
  std::map<std::string, std::string> uuids;
};

/// Checks every run's data source (before any row is written), then writes a `queued` row for
/// each of `runs` (configs of `experiment`, overrides applied) that has none yet, all in one
/// transaction, and says what to do with each. Throws UserError, changing nothing, when a data
/// source is missing or a stored run of the same name has a different config.
LaunchPlan queue_experiment(store::ResultsStore& store, const Experiment& experiment,
                            const std::vector<RunConfig>& runs, const QueueOptions& options = {});

/// The first setting in which `wanted` differs from a stored run config, as
/// "train.steps is 300 here but 200 in the database", or "" when they are the same run. Where the
/// run executes (train.device) does not count, nor a vocab_size of 0 (take the tokenizer's) that
/// the trainer resolved.
std::string config_difference(const RunConfig& wanted, const std::string& stored_json);

}  // namespace mmlab::queue
