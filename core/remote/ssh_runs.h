// SPDX-License-Identifier: GPL-3.0-or-later
// Runs on an SSH host. The trainer is `mmlab train … --progress jsonl` started on the remote side
// under setsid + nohup, so it survives the SSH connection and the studio; its event stream goes
// to a log file there, which a follower reads over SSH (`tail -F`) from any byte offset, so a
// dropped connection is re-attached without losing or repeating lines. The trainer writes its own
// results database in the host's folder; the run's rows come home by snapshot + merge
// (run_sync.h).
//
// The host's folder:   DIR/results.sqlite, DIR/checkpoints/, DIR/launches/TAG.{json,jsonl,err,pid}
// where TAG names one start of a trainer (a new run or a resume).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/remote/host.h"
#include "core/remote/run_sync.h"

namespace mmlab::remote {

/// One start of a trainer on a host, as the local side remembers it.
struct Launch {
  std::string tag;       ///< unique name of this start (also the log's file name)
  std::string host;      ///< the host's name in the hosts file
  std::string run_name;  ///< the run's name in its experiment (or "resume <uuid>")
  int64_t pid = 0;       ///< the trainer's pid on the host (SSH hosts)
  int64_t job_id = 0;    ///< the Slurm job (Slurm clusters)
  std::string db_file = "results.sqlite";  ///< the trainer's database, below the host's folder
  int64_t remote_run_id = 0;               ///< the run's id in the host's database (0 until known)
  std::string uuid;                        ///< the run's uuid (empty until the first sync)
  bool resume = false;                     ///< a resume: its first sync replaces the run's points
  bool synced_full = false;                ///< that first full sync happened
  std::string experiment;        ///< a new run's experiment, copied to the host (below its folder)
  int64_t steps = 0;             ///< a new run's --steps (0: the file's budget)
  bool started_nothing = false;  ///< cancelled before its trainer started: resumed afresh
  bool ended = false;            ///< a sync saw the trainer's final status (nothing more to fetch)
  bool reachable = true;         ///< the last contact with the host worked
  std::string message;           ///< why not, when it did not
  double last_contact = 0;       ///< seconds since the epoch
};

/// The launches of one local database, kept beside it (`results.sqlite.remote.json`).
class LaunchBook {
 public:
  /// Reads the book of the database at `db` (a missing book is empty).
  static LaunchBook load(const std::filesystem::path& db);
  /// Atomically, merged by tag with what other processes saved meanwhile.
  void save() const;
  std::vector<Launch>& launches() { return launches_; }
  /// The launch with this tag, or of the run with this uuid (the newest), or nullptr.
  Launch* find(const std::string& tag_or_uuid);
  /// The runs whose host could not be reached at the last contact of their newest start: uuid →
  /// the sentence why. Such a run is shown `unreachable`, never `lost` (its heartbeat here is
  /// only as fresh as the last sync), until it is known to have ended (see shown_status()).
  std::map<std::string, std::string> unreachable_runs() const;
  static std::filesystem::path path_for(const std::filesystem::path& db);

 private:
  std::filesystem::path path_;
  std::vector<Launch> launches_;
  /// Each entry as this process last read or wrote it (tag → JSON): save() writes only the
  /// entries changed since, so a stale copy never overwrites another process's news.
  mutable std::map<std::string, nlohmann::json> known_;
};

/// The status a run is shown with: `unreachable` when `unreachable_runs` (LaunchBook) has it and
/// it is not known to have ended, else its effective status (`lost` included).
std::string shown_status(const store::RunRow& run,
                         const std::map<std::string, std::string>& unreachable_runs);

/// What to start.
struct LaunchRequest {
  std::filesystem::path experiment_file;  ///< a new run: this experiment (copied to the host)
  std::string
      experiment_on_host;      ///< … or the copy an earlier start left there (Launch::experiment)
  std::string run_name;        ///< … and this run of it
  std::string uuid;            ///< … under this uuid (empty: a new one)
  int64_t steps = 0;           ///< 0: the file's budget
  std::string device;          ///< empty: the file's
  std::string resume_uuid;     ///< instead: resume this run (on its host)
  std::string resume_db_file;  ///< … kept in this database there (Launch::db_file)
};

/// The answer of `mmlab info` on a host, or why there is none.
struct HostCheck {
  bool ok = false;
  std::string problem;       ///< one sentence naming the host and the fix (empty when ok)
  bool unreachable = false;  ///< the problem is that ssh could not reach the host
  std::string version;       ///< the host's mmlab version
  int schema = 0;            ///< its results schema version
};

/// Checks that `host` is reachable, has mmlab, with this build's schema, and a writable folder.
HostCheck check_host(const Host& host);

/// Starts the trainer on `host` (SSH: detached; Slurm: a batch job); throws a UserError naming
/// the host when it cannot.
Launch start_on_host(const Host& host, const LaunchRequest& request);

/// The ssh command that prints the launch's event stream from byte `offset` on and ends when
/// the trainer has ended (and its last line is out).
std::vector<std::string> follow_argv(const Host& host, const Launch& launch, int64_t offset);

/// SIGTERM to the trainer (it checkpoints and stops; on Slurm through scancel). false when it is
/// not running any more.
bool stop_on_host(const Host& host, const Launch& launch);

/// Fetches the points after the last synced one and merges them into `local`; updates
/// `launch` (uuid, reachability). nullopt when the host is unreachable (launch.message says
/// why) or the trainer has not created its run yet.
std::optional<SyncResult> sync_from_host(const Host& host, Launch& launch,
                                         store::ResultsStore& local);

/// The remote side of sync_from_host: `mmlab remote snapshot` writes this to stdout.
void write_snapshot_to_stdout(const std::filesystem::path& db, int64_t run_id, int64_t after_step);

}  // namespace mmlab::remote
