// SPDX-License-Identifier: GPL-3.0-or-later
// The trainer's handle on the results store: bound to one run when it is made, it writes that
// run's rows and no others (its status, heartbeat, config, points and summaries, events and
// checkpoint rows), so "a trainer writes only its own run's rows" is a property of the type.
// ResultsStore::writer() hands one out; MetricBuffer batches its points.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store/records.h"

namespace mmlab::store {

namespace detail {
class Connection;
}

/// Shares its store's connection and keeps it open when the store is gone, so a trainer can
/// hold the writer alone; use it from the thread that uses that store. Copies write the same run.
class RunWriter {
 public:
  int64_t run_id() const { return run_id_; }
  /// The database file.
  const std::filesystem::path& path() const;

  // --- the run's row ---------------------------------------------------------------------------
  /// Takes the run, `queued`, for this process: `running`, with `pid` and `host`, heartbeating.
  /// False when it is no longer queued (another process took it first, or it was cancelled);
  /// nothing changes then.
  bool claim_queued(int64_t pid, const std::string& host);
  /// Replaces the run's config with what its trainer resolved at start (the tokenizer's
  /// vocabulary size, …), its step budget and the build's revision.
  void record_start_config(const std::string& config_json, int64_t total_steps,
                           const std::string& git_rev);
  /// Marks the run `running` in this process: records pid/host/device/versions/parameter counts,
  /// sets started_at on the first start, clears ended_at and error_text, heartbeats.
  void mark_started(const RunStart& start);
  /// Sets the stored status (not kLost). Terminal statuses set ended_at; error_text is kept only
  /// for failed/diverged/stopped.
  void set_status(RunStatus status, const std::string& error_text = "");
  /// Records progress and that the process is alive.
  void heartbeat(int64_t step, int64_t tokens);
  /// Records the op implementations the run uses (RunRow::ops_used).
  void set_ops_used(const std::string& ops_used_json);

  // --- metric points -------------------------------------------------------------------------
  /// Writes `points` in one transaction: metric names are mapped to ids (cached), a repeated
  /// (metric, step) overwrites the old point (a resumed run repeats steps), and the run's
  /// summaries are updated in the same transaction — incrementally for the usual increasing
  /// steps, recomputed from the stored points of a metric whose steps went backwards.
  void append_points(const std::vector<MetricPoint>& points);
  /// Deletes the run's points and events after `step` and recomputes its summaries: what
  /// `--resume` from a checkpoint at `step` calls so the curve continues without stale tails.
  void truncate_after(int64_t step);

  // --- events and checkpoints ------------------------------------------------------------------
  int64_t add_event(const std::string& kind, const std::string& payload_json,
                    std::optional<int64_t> step = std::nullopt,
                    std::optional<double> wall = std::nullopt);
  int64_t add_checkpoint(int64_t step, const std::string& path, int64_t bytes,
                         const std::string& hash);
  /// Forgets a checkpoint row of this run (keep-last-k deleted its file); a row of another run
  /// is left alone.
  void delete_checkpoint_row(int64_t checkpoint_id);

  // --- what the trainer reads back of its own run ----------------------------------------------
  RunRow row();
  /// Events with id > after_id, oldest first.
  std::vector<EventRow> events(int64_t after_id = 0);
  /// Ordered by step, oldest first.
  std::vector<CheckpointRow> checkpoints();
  std::optional<CheckpointRow> latest_checkpoint();

 private:
  friend class ResultsStore;
  // Refuses a run id the database does not hold (UserError "No run N in X.").
  RunWriter(std::shared_ptr<detail::Connection> connection, int64_t run_id);
  void recompute_summary(int64_t metric_id);

  std::shared_ptr<detail::Connection> c_;
  int64_t run_id_;
};

/// Collects points and writes them with RunWriter::append_points once `max_points` are pending
/// or the oldest pending point is `max_age` old, so a trainer can call add() every step and a
/// live plot still sees fresh points. flush() at checkpoints and at exit; the destructor flushes
/// too but cannot report a failure.
class MetricBuffer {
 public:
  /// `run` outlives the buffer.
  explicit MetricBuffer(RunWriter& run, size_t max_points = 1000,
                        std::chrono::milliseconds max_age = std::chrono::milliseconds(1000));
  ~MetricBuffer();
  MetricBuffer(const MetricBuffer&) = delete;
  MetricBuffer& operator=(const MetricBuffer&) = delete;

  void add(std::string metric, int64_t step, int64_t tokens, double wall, double value);
  void add(MetricPoint point);
  /// Writes everything pending (one transaction). The points stay pending when it throws.
  void flush();
  /// Forgets the pending points and returns how many there were: for a run that is failing
  /// because they cannot be written (a full disk), so that nothing retries them.
  size_t discard();
  size_t pending() const { return pending_.size(); }

 private:
  void maybe_flush();

  RunWriter& run_;
  size_t max_points_;
  std::chrono::milliseconds max_age_;
  std::chrono::steady_clock::time_point oldest_{};
  std::vector<MetricPoint> pending_;
};

}  // namespace mmlab::store
