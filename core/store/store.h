// SPDX-License-Identifier: GPL-3.0-or-later
// The results store: one SQLite file holding experiments, runs, metric curves and their
// summaries, events, checkpoints, tags and notes (schema and concurrency model: docs/store.md).
//
// Who writes what: a trainer writes only its own run's rows, in short batched transactions; the
// studio writes only user metadata (tags, notes, queued runs). Several processes may write to one
// file at once (WAL + BEGIN IMMEDIATE + busy_timeout serialise them); readers never block writers.
//
// One ResultsStore is one connection: use it from one thread at a time (open another for a
// worker thread). Every SQLite failure is thrown, naming the database file:
//   mmlab::UserError      the user can fix it (not a database, newer schema, unwritable directory,
//                         read-only file, database locked for too long, unknown run id, bad tag);
//   mmlab::ResourceError  the disk is full;
//   mmlab::store::StoreError anything else (a bug or an I/O failure), with SQLite's message.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/results/metric_names.h"
#include "core/results/run_status.h"
#include "core/store/sqlite.h"
#include "core/util/error.h"

namespace mmlab::store {

// The run status vocabulary is core/results/run_status.h; the store's code names it as its own.
using mmlab::is_terminal;
using mmlab::parse_run_status;
using mmlab::RunStatus;
using mmlab::to_string;

/// Seconds since the Unix epoch, with sub-second precision: every *_at column uses this unit.
double now_seconds();
/// This machine's host name, as the trainer should record it (lost-run detection compares it).
std::string current_host();

/// Whether a read-only open of `path` uses SQLite's immutable=1 (no locks, no side files): when
/// this process can write neither the file nor its folder — or just not one of them — and no
/// write-ahead log (`path`-wal) exists, so the file alone holds every commit. A normal reader
/// would have to create -shm/-wal files, which fails in an unwritable folder and, beside an
/// unwritable file, leaves files behind that it cannot remove. With a -wal present the shared
/// (normal) read-only open is the only one that sees its commits.
bool reads_immutable(const std::filesystem::path& path);

struct OpenOptions {
  /// kReadOnly never creates, migrates or writes (a missing file or an older schema is refused).
  /// It also works where this process cannot write the file or its folder (see
  /// reads_immutable()).
  Database::Mode mode = Database::Mode::kReadWrite;
  /// kReadWrite: create a missing file (and its folder). false for commands that need an
  /// existing database: a missing one is refused, naming it, and nothing is created.
  bool create = true;
  /// How long a writer waits for another writer's transaction before giving up.
  std::chrono::milliseconds busy_timeout{10000};
  /// A `running` run is shown as lost at once when it ran on this host and its process is gone;
  /// on another host (where the pid cannot be checked), or before its process recorded its pid,
  /// when its heartbeat is older than this.
  double lost_after_seconds = 120.0;
};

struct ExperimentRow {
  int64_t id = 0;
  std::string name;
  std::string spec_json;
  double created_at = 0;
};

/// What is known when a run is created (queued or about to start).
struct NewRun {
  int64_t experiment_id = 0;  ///< from ensure_experiment()
  std::string name;
  std::string family;              ///< "mamba", "moe-mamba", "transformer", "transformer-moe", …
  std::string config_json = "{}";  ///< the full resolved config; must be valid JSON
  int64_t seed = 0;
  int64_t total_steps = 0;
  std::string git_rev;
  RunStatus status = RunStatus::kQueued;  ///< kQueued or kRunning
  std::string uuid;  ///< empty: generated (identifies the run across databases, see import)
  /// Where a queued run will train when that is not here: the name of its host in the hosts
  /// file (`mmlab hosts`); the trainer overwrites it with its own host when it starts.
  std::string host;
};

/// What the trainer learns when the run starts (or resumes) in a process.
struct RunStart {
  int64_t pid = 0;
  std::string host;    ///< current_host()
  std::string device;  ///< "cpu", "cuda:0 (NVIDIA H200)", …
  std::string torch_version;
  std::string cuda_version;
  int64_t params_total = 0;
  int64_t params_active = 0;    ///< per token (MoE: only the routed experts count)
  int64_t params_nonembed = 0;  ///< excluding token embedding and tied output layer
};

/// A run as the browser shows it: every runs column plus the summary figures, read in one query
/// without touching metric_points.
struct RunRow {
  int64_t id = 0;
  std::string uuid;
  int64_t experiment_id = 0;
  std::string experiment;  ///< the experiment's name
  std::string name;
  RunStatus status = RunStatus::kQueued;            ///< as stored
  RunStatus effective_status = RunStatus::kQueued;  ///< status, or kLost (see OpenOptions)
  std::string family;
  std::string config_json;
  int64_t seed = 0;
  std::string host;
  int64_t pid = 0;
  std::string device;
  std::string git_rev;
  std::string torch_version;
  std::string cuda_version;
  int64_t params_total = 0;
  int64_t params_active = 0;
  int64_t params_nonembed = 0;
  int64_t total_steps = 0;
  int64_t step = 0;    ///< last heartbeat's step
  int64_t tokens = 0;  ///< last heartbeat's token count
  double created_at = 0;
  std::optional<double> started_at;
  std::optional<double> ended_at;
  std::optional<double> heartbeat_at;
  std::string error_text;
  /// JSON object op -> implementation the run's steps used ("" before its first step)
  std::string ops_used;
  std::vector<std::string> tags;  ///< sorted

  std::optional<double> final_loss_smooth;  ///< last value of loss_smooth
  std::optional<double> best_val_loss;      ///< min of val_loss
  std::optional<int64_t> best_val_step;     ///< step of that min
  std::optional<double> tokens_per_s;       ///< last value of tokens_per_s
  /// Seconds spent training: the `wall` of the run's last logged point (the trainer's clock,
  /// summed over its sessions), so time stopped, queued or preparing data does not count.
  std::optional<double> duration_s;
};

/// list_runs() filter; empty fields do not filter. All given fields must match.
struct RunFilter {
  std::string text;  ///< case-insensitive substring of run name, experiment, family or a tag
  std::string family;
  std::optional<RunStatus> status;  ///< compared with effective_status (so kLost works)
  std::string tag;
  std::optional<int64_t> experiment_id;
};

/// One metric point as the trainer records it.
struct MetricPoint {
  std::string metric;
  int64_t step = 0;
  int64_t tokens = 0;
  double wall = 0;   ///< seconds of training wall time (the trainer's clock; not interpreted here)
  double value = 0;  ///< NaN is stored as NULL and reads back as NaN
};

/// One stored point of one metric.
struct PointRow {
  int64_t step = 0;
  int64_t tokens = 0;
  double wall = 0;
  double value = 0;
};

/// Per-run, per-metric summary maintained on every append (so readers never scan points).
struct SummaryRow {
  std::string metric;
  std::optional<double> last;  ///< value at last_step (empty when it was NaN)
  int64_t last_step = 0;
  std::optional<double> min;           ///< smallest non-NaN value (empty when every value was NaN)
  std::optional<int64_t> step_at_min;  ///< first step reaching min
  int64_t count = 0;
};

/// The event a trainer writes as a training session of a run begins (its start, and every
/// resume), payload {"wall": the run's training seconds so far, "started_at": Unix seconds at
/// that moment}. A point's wall-clock time is started_at + (point wall - session wall) of the
/// last session that began at or before its wall.
inline constexpr char kSessionEvent[] = "session";

struct TrainingSession {
  double wall = 0;        ///< training seconds the run had when the session began
  double started_at = 0;  ///< Unix seconds when it began
};

struct EventRow {
  int64_t id = 0;
  int64_t run_id = 0;
  std::optional<int64_t> step;
  std::optional<double> wall;
  std::string kind;  ///< "eval", "checkpoint", "status", "log", … (the progress protocol's words)
  std::string payload_json;
  double created_at = 0;
};

struct CheckpointRow {
  int64_t id = 0;
  int64_t run_id = 0;
  int64_t step = 0;
  std::string path;
  int64_t bytes = 0;
  std::string hash;
  double created_at = 0;
};

struct ImportResult {
  int imported = 0;  ///< runs copied
  int skipped = 0;   ///< runs whose uuid was already present
};

class ResultsStore {
 public:
  /// The schema version this build writes (PRAGMA user_version).
  static int schema_version();

  /// Opens or (read-write) creates the database at `path`, creating its directory, setting the
  /// pragmas and migrating an older schema forward. Throws UserError when the file is not an
  /// SQLite database, is another program's database, has a newer schema, or its directory
  /// cannot be written.
  explicit ResultsStore(const std::filesystem::path& path, OpenOptions options = {});
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  const std::filesystem::path& path() const { return db_.path(); }
  /// The low-level connection (for export tools and tests).
  Database& database() { return db_; }

  // --- experiments -------------------------------------------------------------------------
  /// The id of experiment `name`, created (with `spec_json`) when missing. An existing
  /// experiment keeps its spec: each run records its own full config.
  int64_t ensure_experiment(const std::string& name, const std::string& spec_json = "{}");
  std::optional<ExperimentRow> find_experiment(const std::string& name);
  std::vector<ExperimentRow> list_experiments();

  // --- runs (written by the trainer) -----------------------------------------------------------
  /// Inserts a run and returns its id. config_json must be valid JSON.
  int64_t create_run(const NewRun& run);
  /// Inserts every run in one transaction (all or none) and returns their ids in order: the
  /// `queued` rows of a launched experiment.
  std::vector<int64_t> create_runs(const std::vector<NewRun>& runs);
  /// Takes a `queued` run for this process: `running`, with `pid` and `host`, heartbeating.
  /// False when the run is no longer queued (another process took it first, or it was
  /// cancelled); nothing changes then.
  bool claim_queued_run(int64_t run_id, int64_t pid, const std::string& host);
  /// Ends a `queued` run that never started: `stopped` (the user took it off the queue) or
  /// `failed` (its trainer could not be started), with `reason`. False when it is no longer
  /// queued.
  bool cancel_queued_run(int64_t run_id, const std::string& reason,
                         RunStatus status = RunStatus::kStopped);
  /// Replaces the run's config with what its trainer resolved at start (the tokenizer's
  /// vocabulary size, …), its step budget and the build's revision.
  void record_start_config(int64_t run_id, const std::string& config_json, int64_t total_steps,
                           const std::string& git_rev);
  /// Marks the run `running` in this process: records pid/host/device/versions/parameter counts,
  /// sets started_at on the first start, clears ended_at and error_text, heartbeats.
  void mark_started(int64_t run_id, const RunStart& start);
  /// Sets the stored status (not kLost). Terminal statuses set ended_at; error_text is kept only
  /// for failed/diverged/stopped.
  void set_status(int64_t run_id, RunStatus status, const std::string& error_text = "");
  /// Records progress and that the process is alive.
  void heartbeat(int64_t run_id, int64_t step, int64_t tokens);
  /// Records the op implementations the run uses (RunRow::ops_used).
  void set_ops_used(int64_t run_id, const std::string& ops_used_json);

  // --- metric points -------------------------------------------------------------------------
  /// Writes `points` in one transaction: metric names are mapped to ids (cached), a repeated
  /// (run, metric, step) overwrites the old point (a resumed run repeats steps), and the run's
  /// summaries are updated in the same transaction — incrementally for the usual increasing
  /// steps, recomputed from the stored points of a metric whose steps went backwards.
  void append_points(int64_t run_id, const std::vector<MetricPoint>& points);
  /// Deletes the run's points and events after `step` and recomputes its summaries: what
  /// `--resume` from a checkpoint at `step` calls so the curve continues without stale tails.
  void truncate_after(int64_t run_id, int64_t step);
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
  int64_t add_event(int64_t run_id, const std::string& kind, const std::string& payload_json,
                    std::optional<int64_t> step = std::nullopt,
                    std::optional<double> wall = std::nullopt);
  /// Events with id > after_id, oldest first.
  std::vector<EventRow> events(int64_t run_id, int64_t after_id = 0);
  /// The run's training sessions (kSessionEvent), in order; empty for runs trained before
  /// sessions were recorded. A malformed payload is skipped.
  std::vector<TrainingSession> sessions(int64_t run_id);
  int64_t add_checkpoint(int64_t run_id, int64_t step, const std::string& path, int64_t bytes,
                         const std::string& hash);
  /// Ordered by step, oldest first.
  std::vector<CheckpointRow> list_checkpoints(int64_t run_id);
  std::optional<CheckpointRow> latest_checkpoint(int64_t run_id);
  /// Forgets a checkpoint row (keep-last-k deleted its file).
  void delete_checkpoint_row(int64_t checkpoint_id);

  // --- reading runs (the browser, the CLI) -----------------------------------------------------
  std::vector<RunRow> list_runs(const RunFilter& filter = {});
  std::optional<RunRow> find_run(int64_t run_id);
  std::optional<RunRow> find_run_by_uuid(const std::string& uuid);
  /// find_run, or a UserError "No run N in X." when it does not exist.
  RunRow get_run(int64_t run_id);
  /// Ids of `running` runs that are lost (see OpenOptions::lost_after_seconds).
  std::vector<int64_t> lost_runs(double stale_after_seconds);
  /// OpenOptions::lost_after_seconds of this connection.
  double lost_after_seconds() const { return options_.lost_after_seconds; }
  /// Changes whenever another connection commits (PRAGMA data_version): a cheap "anything new?"
  /// check for a polling reader.
  int64_t data_version();

  // --- user metadata (written by the studio and `mmlab runs tag`)
  // ---------------------------------
  /// Tags are trimmed; an empty tag or one with control characters is a UserError.
  void add_tag(int64_t run_id, const std::string& tag);
  void remove_tag(int64_t run_id, const std::string& tag);
  std::vector<std::string> tags(int64_t run_id);
  /// Every tag in use, sorted.
  std::vector<std::string> all_tags();
  /// "" when the run has no note.
  std::string note(int64_t run_id);
  /// An empty text removes the note.
  void set_note(int64_t run_id, const std::string& text);

  /// Deletes the run with its points, summaries, events, checkpoint rows, tags and note (not the
  /// checkpoint files: the caller owns those).
  void delete_run(int64_t run_id);

  /// Copies every run of the database at `other` whose uuid is not here yet (with its
  /// experiment, points, summaries, events, checkpoints, tags and note), remapping ids.
  /// `other` is opened read-only and must have this build's schema version.
  ImportResult import_runs_from(const std::filesystem::path& other);

  /// "ok", or the problems PRAGMA integrity_check lists, one per line.
  std::string integrity_check();

 private:
  int64_t metric_id(const std::string& name);  // creates the name; call inside a write txn
  std::optional<int64_t> find_metric_id(std::string_view name);
  void require_run(int64_t run_id);  // throws no_run_error() when the run does not exist
  UserError no_run_error(int64_t run_id) const;
  int64_t insert_run(const NewRun& run, double now);  // call inside a write txn
  void recompute_summary(int64_t run_id, int64_t metric_id);
  std::vector<RunRow> query_runs(const std::string& where,
                                 const std::function<void(Statement&)>& bind);
  RunStatus derive_status(const RunRow& row, double stale_after_seconds) const;

  OpenOptions options_;
  Database db_;
  std::string host_;
  // name -> id; metric ids are never reused (names are never deleted), so entries stay valid
  // across transactions of other processes. Cleared when a write transaction rolls back.
  std::unordered_map<std::string, int64_t> metric_ids_;
};

/// Collects points and writes them with ResultsStore::append_points once `max_points` are pending
/// or the oldest pending point is `max_age` old, so a trainer can call add() every step and a
/// live plot still sees fresh points. flush() at checkpoints and at exit; the destructor flushes
/// too but cannot report a failure.
class MetricBuffer {
 public:
  MetricBuffer(ResultsStore& store, int64_t run_id, size_t max_points = 1000,
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

  ResultsStore& store_;
  int64_t run_id_;
  size_t max_points_;
  std::chrono::milliseconds max_age_;
  std::chrono::steady_clock::time_point oldest_{};
  std::vector<MetricPoint> pending_;
};

}  // namespace mmlab::store
