// SPDX-License-Identifier: GPL-3.0-or-later
// Bringing a remote run's rows home. The remote side writes a *snapshot* — a small results
// database holding one run with only its points after a given step — and the local side merges
// it: `mmlab runs import` semantics (runs are matched by uuid, experiments by name, metrics by
// name), extended to runs already present, which receive the new points and the run's current
// status, summaries, events and checkpoint rows. Tags and notes stay the local ones.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/store/store.h"

namespace mmlab::remote {

/// Writes a new results database `dest` holding run `run_id` of `source` (its experiment, row,
/// summaries, events, checkpoints) and its points with step > `after_step`, read in one
/// consistent snapshot while a trainer may be writing. `dest` must not exist.
void write_run_snapshot(const std::filesystem::path& source, int64_t run_id,
                        const std::filesystem::path& dest, int64_t after_step);

struct SyncResult {
  std::string uuid;
  int64_t run_id = 0;      ///< the run's id in the local database
  int64_t points = 0;      ///< points written (new or changed)
  int64_t last_step = -1;  ///< the run's highest step with a point, locally, after the merge
  bool created = false;    ///< the run was new here
};

/// Merges the snapshot at `snapshot` into `local` in one transaction. `full`: the snapshot holds
/// every point of the run (after_step -1), so the local points it lacks are dropped — used after a
/// resume that may have discarded a tail of the curve.
SyncResult merge_run_snapshot(store::ResultsStore& local, const std::filesystem::path& snapshot,
                              bool full);

/// The highest step with a point of run `uuid` in `local` (-1 when it has none or is unknown):
/// what to ask the remote side for next.
int64_t last_synced_step(store::ResultsStore& local, const std::string& uuid);

}  // namespace mmlab::remote
