// SPDX-License-Identifier: GPL-3.0-or-later
// The rows of the results store as its roles read and write them (ResultsStore, RunReader,
// RunWriter, UserMetadata), and the options a database is opened with.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/results/metric_names.h"
#include "core/results/run_status.h"
#include "core/store/sqlite.h"

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

}  // namespace mmlab::store
