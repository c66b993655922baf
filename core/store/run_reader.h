// SPDX-License-Identifier: GPL-3.0-or-later
// The queries of the results store: runs as the browser shows them, their curves, summaries,
// events, checkpoints, tags and notes, and the experiments. What the CLI's reports, the studio
// and remote sync read; it writes nothing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/store/records.h"

namespace mmlab::store {

namespace detail {
class Connection;
}

/// A view of one store's connection (ResultsStore::reader()): used from that store's thread,
/// valid while the store is.
class RunReader {
 public:
  explicit RunReader(detail::Connection& connection) : c_(&connection) {}

  const std::filesystem::path& path() const;

  // --- experiments -------------------------------------------------------------------------
  std::optional<ExperimentRow> find_experiment(const std::string& name);
  std::vector<ExperimentRow> list_experiments();

  // --- runs ----------------------------------------------------------------------------------
  std::vector<RunRow> list_runs(const RunFilter& filter = {});
  std::optional<RunRow> find_run(int64_t run_id);
  std::optional<RunRow> find_run_by_uuid(const std::string& uuid);
  /// find_run, or a UserError "No run N in X." when it does not exist.
  RunRow get_run(int64_t run_id);
  /// Ids of `running` runs that are lost (see OpenOptions::lost_after_seconds).
  std::vector<int64_t> lost_runs(double stale_after_seconds);
  /// OpenOptions::lost_after_seconds of this connection.
  double lost_after_seconds() const;
  /// Changes whenever another connection commits (PRAGMA data_version): a cheap "anything new?"
  /// check for a polling reader.
  int64_t data_version();

  // --- metric points -------------------------------------------------------------------------
  /// All points of one metric of one run, by step (empty for an unknown metric).
  std::vector<PointRow> points(int64_t run_id, std::string_view metric);
  /// Points with step > after_step: incremental polling by a live plot.
  std::vector<PointRow> points_since(int64_t run_id, std::string_view metric, int64_t after_step);
  /// Every point of a run, ordered by metric name then step (export).
  void for_each_point(int64_t run_id,
                      const std::function<void(const std::string& metric, const PointRow&)>& fn);
  /// Names of the metrics the run has points for, sorted.
  std::vector<std::string> metric_names(int64_t run_id);
  std::vector<SummaryRow> summaries(int64_t run_id);

  // --- events and checkpoints ------------------------------------------------------------------
  /// Events with id > after_id, oldest first.
  std::vector<EventRow> events(int64_t run_id, int64_t after_id = 0);
  /// The run's training sessions (kSessionEvent), in order; empty for runs trained before
  /// sessions were recorded. A malformed payload is skipped.
  std::vector<TrainingSession> sessions(int64_t run_id);
  /// Ordered by step, oldest first.
  std::vector<CheckpointRow> list_checkpoints(int64_t run_id);
  std::optional<CheckpointRow> latest_checkpoint(int64_t run_id);

  // --- user metadata, as written by UserMetadata -----------------------------------------------
  std::vector<std::string> tags(int64_t run_id);
  /// Every tag in use, sorted.
  std::vector<std::string> all_tags();
  /// "" when the run has no note.
  std::string note(int64_t run_id);

 private:
  std::vector<RunRow> query_runs(const std::string& where,
                                 const std::function<void(Statement&)>& bind);
  RunStatus derive_status(const RunRow& row, double stale_after_seconds) const;

  detail::Connection* c_;
};

}  // namespace mmlab::store
