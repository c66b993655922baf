// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/store.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/store/schema.h"
#include "core/util/error.h"

namespace mmlab::store {
namespace fs = std::filesystem;

namespace {

// 128 random bits as 32 lowercase hex digits, the format migration 2 backfills with. Drawn from
// the OS for every run (runs are created rarely): a seeded PRNG would be copied into forked
// children, which would then hand out the same uuids.
std::string new_uuid() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int word = 0; word < 4; ++word) {
    uint32_t bits = rd();
    for (int i = 0; i < 8; ++i, bits >>= 4) out.push_back(kHex[bits & 0xf]);
  }
  return out;
}

bool pid_alive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  // EPERM: the process exists but belongs to another user.
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return {};
  size_t end = text.find_last_not_of(space);
  return text.substr(begin, end - begin + 1);
}

std::string like_pattern(const std::string& text) {
  std::string out = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('%');
  return out;
}

void require_json(const std::string& text, const char* what) {
  if (!nlohmann::json::accept(text)) {
    throw UserError(std::string("The ") + what + " to store is not valid JSON.",
                    "Pass a JSON document (\"{}\" when there is nothing to record).");
  }
}

void require_existing(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw UserError("The results database " + path.string() + " does not exist.",
                    "Check --db (or train a run first to create it).");
  }
}

Database open_database(const fs::path& path, const OpenOptions& options) {
  if (path.empty()) {
    throw UserError("No results database path was given.", "Pass one with --db.");
  }
  if (options.mode == Database::Mode::kReadOnly) {
    require_existing(path);
    Database::Flags flags;
    flags.immutable = reads_immutable(path);
    return Database(path, options.mode, flags);
  }
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (options.create) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
      throw UserError("Cannot create the directory " + dir.string() +
                          " for the results database (" +
                          (ec ? ec.message() : std::string("not a directory")) + ").",
                      "Choose another --db path, or fix the permissions.");
    }
  } else {
    require_existing(path);
  }
  // SQLite needs to create the -wal and -shm files beside the database, even when the database
  // file itself exists and is writable.
  if (::access(dir.c_str(), W_OK) != 0) {
    throw UserError("The directory " + dir.string() + " is not writable, so the results database " +
                        path.string() + " cannot be written there.",
                    "Choose another --db path, or fix the permissions.");
  }
  Database::Flags flags;
  flags.create_missing = options.create;
  return Database(path, options.mode, flags);
}

// Switches the file to WAL (a property of the file: a no-op once set). SQLite changes the journal
// mode by taking a read lock and then upgrading it to a write lock; when two processes do that on
// a fresh file at once, SQLite refuses one of them with SQLITE_BUSY at once instead of calling the
// busy handler (both waiting would deadlock), so the retry is done here. Whoever comes later
// finds WAL in the file header and writes nothing.
void switch_to_wal(Database& db, std::chrono::steady_clock::time_point deadline) {
  retry_while_busy(db, deadline, [&] { db.query_text("PRAGMA journal_mode = WAL"); });
}

// The SELECT list of a RunRow. Summary figures come from three primary-key lookups into
// run_summaries, never from metric_points; the tags from the clustered tags table. The metric
// names are core/results/metric_names.h's constants (quoted as they are: none holds a quote).
const std::string& run_select() {
  // The id of one metric's name, as a scalar subquery.
  const auto metric_id = [](const char* name) {
    return std::string("(SELECT id FROM metric_names WHERE name = '") + name + "')";
  };
  static const std::string sql =
      R"sql(
SELECT r.id, r.uuid, r.experiment_id, e.name, r.name, r.status, r.family, r.config_json, r.seed,
       r.host, r.pid, r.device, r.git_rev, r.torch_version, r.cuda_version, r.params_total,
       r.params_active, r.params_nonembed, r.total_steps, r.step, r.tokens, r.created_at,
       r.started_at, r.ended_at, r.heartbeat_at, r.error_text,
       (SELECT group_concat(t.tag, char(31)) FROM tags t WHERE t.run_id = r.id),
       ls.last, vl.min, vl.step_at_min, tp.last,
       (SELECT p.wall FROM metric_points p
         WHERE p.run_id = r.id AND p.metric_id = ls.metric_id AND p.step = ls.last_step),
       r.ops_used
FROM runs r
JOIN experiments e ON e.id = r.experiment_id
LEFT JOIN run_summaries ls ON ls.run_id = r.id AND ls.metric_id = )sql" +
      metric_id(metric::kLossSmooth) +
      "\nLEFT JOIN run_summaries vl ON vl.run_id = r.id AND vl.metric_id = " +
      metric_id(metric::kValLoss) +
      "\nLEFT JOIN run_summaries tp ON tp.run_id = r.id AND tp.metric_id = " +
      metric_id(metric::kTokensPerS) + "\n";
  return sql;
}

RunRow read_run(const Statement& s) {
  RunRow r;
  r.id = s.column_int64(0);
  r.uuid = s.column_text(1);
  r.experiment_id = s.column_int64(2);
  r.experiment = s.column_text(3);
  r.name = s.column_text(4);
  r.status = parse_run_status(s.column_text(5));
  r.effective_status = r.status;
  r.family = s.column_text(6);
  r.config_json = s.column_text(7);
  r.seed = s.column_int64(8);
  r.host = s.column_text(9);
  r.pid = s.column_int64(10);
  r.device = s.column_text(11);
  r.git_rev = s.column_text(12);
  r.torch_version = s.column_text(13);
  r.cuda_version = s.column_text(14);
  r.params_total = s.column_int64(15);
  r.params_active = s.column_int64(16);
  r.params_nonembed = s.column_int64(17);
  r.total_steps = s.column_int64(18);
  r.step = s.column_int64(19);
  r.tokens = s.column_int64(20);
  r.created_at = s.column_double(21);
  r.started_at = s.column_opt_double(22);
  r.ended_at = s.column_opt_double(23);
  r.heartbeat_at = s.column_opt_double(24);
  r.error_text = s.column_text(25);
  std::string tags = s.column_text(26);
  for (size_t start = 0; !tags.empty() && start <= tags.size();) {
    size_t end = tags.find('\x1f', start);
    if (end == std::string::npos) end = tags.size();
    r.tags.push_back(tags.substr(start, end - start));
    start = end + 1;
  }
  std::sort(r.tags.begin(), r.tags.end());
  r.final_loss_smooth = s.column_opt_double(27);
  r.best_val_loss = s.column_opt_double(28);
  r.best_val_step = s.column_opt_int64(29);
  r.tokens_per_s = s.column_opt_double(30);
  r.duration_s = s.column_opt_double(31);
  r.ops_used = s.column_text(32);
  return r;
}

// Running summary of one metric while a batch is appended.
struct SummaryAcc {
  std::optional<double> last;
  int64_t last_step = 0;
  std::optional<double> min;
  std::optional<int64_t> step_at_min;
  int64_t count = 0;
  bool recompute = false;  // a step went backwards or repeated: rebuild from the stored points
};

}  // namespace

// --- free functions ------------------------------------------------------------------------------

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string current_host() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

bool reads_immutable(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  if (fs::exists(fs::path(path.string() + "-wal"), ec)) return false;
  return ::access(path.c_str(), W_OK) != 0 || ::access(dir.c_str(), W_OK) != 0;
}

// --- ResultsStore: opening -----------------------------------------------------------------------

int ResultsStore::schema_version() {
  return static_cast<int>(schema_migrations().size());
}

ResultsStore::ResultsStore(const fs::path& path, OpenOptions options)
    : options_(options), db_(open_database(path, options)), host_(current_host()) {
  const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
  // The busy handler first: everything after may wait for another process.
  db_.set_busy_timeout(options_.busy_timeout);
  // Nothing about the file changes before it is known to be ours (or empty): it is identified by
  // reading its header, user_version and application_id first, and until then closing the
  // connection must not checkpoint another program's write-ahead log into its file.
  sqlite3_db_config(db_.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  retry_while_busy(db_, deadline, [&] { identify(db_); });
  sqlite3_db_config(db_.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  if (options_.mode == Database::Mode::kReadWrite) {
    switch_to_wal(db_, deadline);
    // In WAL mode NORMAL syncs at checkpoints only: a commit survives a killed process (the OS
    // holds the pages) and may be lost only on power failure, never corrupting the file.
    db_.exec("PRAGMA synchronous = NORMAL");
  }
  db_.exec("PRAGMA foreign_keys = ON");
  migrate(db_, deadline);
}

ResultsStore::~ResultsStore() = default;

// --- experiments ---------------------------------------------------------------------------------

int64_t ResultsStore::ensure_experiment(const std::string& name, const std::string& spec_json) {
  if (trim(name).empty()) {
    throw UserError("An experiment needs a name.", "Set \"name\" in the experiment file.");
  }
  require_json(spec_json, "experiment spec");
  Transaction txn(db_);
  db_.cached(
         "INSERT INTO experiments (name, spec_json, created_at) VALUES (?1, ?2, ?3) "
         "ON CONFLICT (name) DO NOTHING")
      .bind_all(name, spec_json, now_seconds())
      .run();
  Statement get = db_.cached("SELECT id FROM experiments WHERE name = ?1");
  get.bind(1, name).step();
  int64_t id = get.column_int64(0);
  get.reset();
  txn.commit();
  return id;
}

std::optional<ExperimentRow> ResultsStore::find_experiment(const std::string& name) {
  Statement s =
      db_.cached("SELECT id, name, spec_json, created_at FROM experiments WHERE name = ?1");
  if (!s.bind(1, name).step()) return std::nullopt;
  return ExperimentRow{s.column_int64(0), s.column_text(1), s.column_text(2), s.column_double(3)};
}

std::vector<ExperimentRow> ResultsStore::list_experiments() {
  std::vector<ExperimentRow> out;
  Statement s = db_.cached("SELECT id, name, spec_json, created_at FROM experiments ORDER BY id");
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_text(1), s.column_text(2), s.column_double(3)});
  }
  return out;
}

// --- runs ----------------------------------------------------------------------------------------

void ResultsStore::require_run(int64_t run_id) {
  Statement s = db_.cached("SELECT 1 FROM runs WHERE id = ?1");
  if (!s.bind(1, run_id).step()) throw no_run_error(run_id);
}

UserError ResultsStore::no_run_error(int64_t run_id) const {
  return UserError(
      "No run " + std::to_string(run_id) + " in the results database " + path().string() + ".",
      "List the runs with `mmlab runs list`.");
}

int64_t ResultsStore::insert_run(const NewRun& run, double now) {
  if (run.status != RunStatus::kQueued && run.status != RunStatus::kRunning) {
    throw std::invalid_argument("create_run: a new run is queued or running");
  }
  require_json(run.config_json, "run config");
  Statement exp = db_.cached("SELECT 1 FROM experiments WHERE id = ?1");
  if (!exp.bind(1, run.experiment_id).step()) {
    throw UserError("No experiment " + std::to_string(run.experiment_id) +
                        " in the results database " + path().string() + ".",
                    "Create it first (ensure_experiment).");
  }
  exp.reset();
  db_.cached(
         "INSERT INTO runs (experiment_id, uuid, name, status, family, config_json, seed, "
         "total_steps, git_rev, created_at, host) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
      .bind_all(run.experiment_id, run.uuid.empty() ? new_uuid() : run.uuid, run.name,
                to_string(run.status), run.family, run.config_json, run.seed, run.total_steps,
                run.git_rev, now, run.host)
      .run();
  return db_.last_insert_rowid();
}

int64_t ResultsStore::create_run(const NewRun& run) {
  return create_runs({run}).front();
}

std::vector<int64_t> ResultsStore::create_runs(const std::vector<NewRun>& runs) {
  std::vector<int64_t> ids;
  if (runs.empty()) return ids;
  Transaction txn(db_);
  const double now = now_seconds();
  for (const NewRun& run : runs) ids.push_back(insert_run(run, now));
  txn.commit();
  return ids;
}

bool ResultsStore::claim_queued_run(int64_t run_id, int64_t pid, const std::string& host) {
  db_.cached(
         "UPDATE runs SET status = 'running', pid = ?2, host = ?3, heartbeat_at = ?4 "
         "WHERE id = ?1 AND status = 'queued'")
      .bind_all(run_id, pid, host, now_seconds())
      .run();
  if (db_.changes() > 0) return true;
  require_run(run_id);
  return false;
}

bool ResultsStore::cancel_queued_run(int64_t run_id, const std::string& reason, RunStatus status) {
  if (status != RunStatus::kStopped && status != RunStatus::kFailed) {
    throw std::invalid_argument("cancel_queued_run: a queued run ends stopped or failed");
  }
  db_.cached(
         "UPDATE runs SET status = ?4, error_text = ?2, ended_at = ?3 "
         "WHERE id = ?1 AND status = 'queued'")
      .bind_all(run_id, reason, now_seconds(), to_string(status))
      .run();
  if (db_.changes() > 0) return true;
  require_run(run_id);
  return false;
}

void ResultsStore::record_start_config(int64_t run_id, const std::string& config_json,
                                       int64_t total_steps, const std::string& git_rev) {
  require_json(config_json, "run config");
  db_.cached("UPDATE runs SET config_json = ?2, total_steps = ?3, git_rev = ?4 WHERE id = ?1")
      .bind_all(run_id, config_json, total_steps, git_rev)
      .run();
  if (db_.changes() == 0) require_run(run_id);
}

void ResultsStore::mark_started(int64_t run_id, const RunStart& start) {
  const double now = now_seconds();
  db_.cached(
         "UPDATE runs SET status = 'running', pid = ?2, host = ?3, device = ?4, "
         "torch_version = ?5, cuda_version = ?6, params_total = ?7, params_active = ?8, "
         "params_nonembed = ?9, started_at = coalesce(started_at, ?10), ended_at = NULL, "
         "error_text = '', heartbeat_at = ?10 WHERE id = ?1")
      .bind_all(run_id, start.pid, start.host, start.device, start.torch_version,
                start.cuda_version, start.params_total, start.params_active, start.params_nonembed,
                now)
      .run();
  if (db_.changes() == 0) require_run(run_id);
}

void ResultsStore::set_status(int64_t run_id, RunStatus status, const std::string& error_text) {
  if (status == RunStatus::kLost) {
    throw std::invalid_argument("set_status: 'lost' is derived at read time, never stored");
  }
  const bool keeps_error = status == RunStatus::kFailed || status == RunStatus::kDiverged ||
                           status == RunStatus::kStopped;
  std::optional<double> ended;
  if (is_terminal(status)) ended = now_seconds();
  db_.cached("UPDATE runs SET status = ?2, error_text = ?3, ended_at = ?4 WHERE id = ?1")
      .bind_all(run_id, to_string(status), keeps_error ? error_text : std::string(), ended)
      .run();
  if (db_.changes() == 0) require_run(run_id);
}

void ResultsStore::set_ops_used(int64_t run_id, const std::string& ops_used_json) {
  db_.cached("UPDATE runs SET ops_used = ?2 WHERE id = ?1").bind_all(run_id, ops_used_json).run();
  if (db_.changes() == 0) require_run(run_id);
}

void ResultsStore::heartbeat(int64_t run_id, int64_t step, int64_t tokens) {
  db_.cached("UPDATE runs SET step = ?2, tokens = ?3, heartbeat_at = ?4 WHERE id = ?1")
      .bind_all(run_id, step, tokens, now_seconds())
      .run();
  if (db_.changes() == 0) require_run(run_id);
}

// --- metric points -------------------------------------------------------------------------------

int64_t ResultsStore::metric_id(const std::string& name) {
  auto it = metric_ids_.find(name);
  if (it != metric_ids_.end()) return it->second;
  db_.cached("INSERT INTO metric_names (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
      .bind(1, name)
      .run();
  Statement get = db_.cached("SELECT id FROM metric_names WHERE name = ?1");
  get.bind(1, name).step();
  int64_t id = get.column_int64(0);
  metric_ids_.emplace(name, id);
  return id;
}

std::optional<int64_t> ResultsStore::find_metric_id(std::string_view name) {
  auto it = metric_ids_.find(std::string(name));
  if (it != metric_ids_.end()) return it->second;
  Statement get = db_.cached("SELECT id FROM metric_names WHERE name = ?1");
  if (!get.bind(1, name).step()) return std::nullopt;
  int64_t id = get.column_int64(0);
  // Only cache names read outside a write transaction: a name inserted by an uncommitted
  // transaction of ours could be rolled back.
  if (!db_.in_transaction()) metric_ids_.emplace(std::string(name), id);
  return id;
}

void ResultsStore::recompute_summary(int64_t run_id, int64_t metric_id) {
  db_.cached("DELETE FROM run_summaries WHERE run_id = ?1 AND metric_id = ?2")
      .bind_all(run_id, metric_id)
      .run();
  db_.cached(R"sql(
INSERT INTO run_summaries (run_id, metric_id, last, last_step, min, step_at_min, count)
SELECT ?1, ?2,
  (SELECT value FROM metric_points WHERE run_id = ?1 AND metric_id = ?2
   ORDER BY step DESC LIMIT 1),
  max(step), min(value),
  (SELECT step FROM metric_points WHERE run_id = ?1 AND metric_id = ?2 AND value IS NOT NULL
   ORDER BY value, step LIMIT 1),
  count(*)
FROM metric_points WHERE run_id = ?1 AND metric_id = ?2 HAVING count(*) > 0)sql")
      .bind_all(run_id, metric_id)
      .run();
}

void ResultsStore::append_points(int64_t run_id, const std::vector<MetricPoint>& points) {
  if (points.empty()) return;
  try {
    Transaction txn(db_);
    require_run(run_id);
    // A batch touches few metrics (~10): a small vector beats a hash map here.
    std::vector<std::pair<int64_t, SummaryAcc>> accs;
    auto acc_for = [&](int64_t id) -> SummaryAcc& {
      for (auto& [mid, acc] : accs) {
        if (mid == id) return acc;
      }
      SummaryAcc acc;
      Statement s = db_.cached(
          "SELECT last, last_step, min, step_at_min, count FROM run_summaries "
          "WHERE run_id = ?1 AND metric_id = ?2");
      if (s.bind_all(run_id, id).step()) {
        acc.last = s.column_opt_double(0);
        acc.last_step = s.column_int64(1);
        acc.min = s.column_opt_double(2);
        acc.step_at_min = s.column_opt_int64(3);
        acc.count = s.column_int64(4);
      }
      return accs.emplace_back(id, acc).second;
    };

    // INSERT OR REPLACE: a resumed run that repeats a step overwrites the old point.
    Statement insert = db_.cached(
        "INSERT OR REPLACE INTO metric_points (run_id, metric_id, step, tokens, wall, value) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    insert.bind(1, run_id);
    for (const MetricPoint& p : points) {
      const int64_t id = metric_id(p.metric);
      SummaryAcc& acc = acc_for(id);
      insert.bind(2, id).bind(3, p.step).bind(4, p.tokens).bind(5, p.wall).bind(6, p.value);
      insert.run();
      if (acc.recompute) continue;
      if (acc.count > 0 && p.step <= acc.last_step) {
        // The point may have replaced one that held the min or the last value: the incremental
        // summary cannot tell, so this metric is rebuilt from its points below.
        acc.recompute = true;
        continue;
      }
      ++acc.count;
      acc.last_step = p.step;
      acc.last = std::isnan(p.value) ? std::nullopt : std::optional<double>(p.value);
      if (!std::isnan(p.value) && (!acc.min || p.value < *acc.min)) {
        acc.min = p.value;
        acc.step_at_min = p.step;
      }
    }

    for (const auto& [id, acc] : accs) {
      if (acc.recompute) {
        recompute_summary(run_id, id);
        continue;
      }
      db_.cached(
             "INSERT OR REPLACE INTO run_summaries "
             "(run_id, metric_id, last, last_step, min, step_at_min, count) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
          .bind_all(run_id, id, acc.last, acc.last_step, acc.min, acc.step_at_min, acc.count)
          .run();
    }
    txn.commit();
  } catch (...) {
    // Names inserted by the rolled-back transaction do not exist; their cached ids are wrong.
    metric_ids_.clear();
    throw;
  }
}

void ResultsStore::truncate_after(int64_t run_id, int64_t step) {
  Transaction txn(db_);
  require_run(run_id);
  db_.cached("DELETE FROM metric_points WHERE run_id = ?1 AND step > ?2")
      .bind_all(run_id, step)
      .run();
  db_.cached("DELETE FROM events WHERE run_id = ?1 AND step > ?2").bind_all(run_id, step).run();
  std::vector<int64_t> ids;
  {
    Statement s = db_.cached("SELECT metric_id FROM run_summaries WHERE run_id = ?1");
    s.bind(1, run_id);
    while (s.step()) ids.push_back(s.column_int64(0));
  }
  for (int64_t id : ids) recompute_summary(run_id, id);
  txn.commit();
}

std::vector<PointRow> ResultsStore::points_since(int64_t run_id, std::string_view metric,
                                                 int64_t after_step) {
  std::vector<PointRow> out;
  std::optional<int64_t> id = find_metric_id(metric);
  if (!id) return out;
  Statement s = db_.cached(
      "SELECT step, tokens, wall, value FROM metric_points "
      "WHERE run_id = ?1 AND metric_id = ?2 AND step > ?3 ORDER BY step");
  s.bind_all(run_id, *id, after_step);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_double(2), s.column_double(3)});
  }
  return out;
}

std::vector<PointRow> ResultsStore::points(int64_t run_id, std::string_view metric) {
  return points_since(run_id, metric, std::numeric_limits<int64_t>::min());
}

void ResultsStore::for_each_point(
    int64_t run_id, const std::function<void(const std::string&, const PointRow&)>& fn) {
  // One read transaction, so the export is a consistent snapshot while the trainer writes.
  Transaction txn(db_, Transaction::Kind::kDeferred);
  for (const std::string& name : metric_names(run_id)) {
    for (const PointRow& p : points(run_id, name)) fn(name, p);
  }
  txn.commit();
}

std::vector<std::string> ResultsStore::metric_names(int64_t run_id) {
  std::vector<std::string> out;
  Statement s = db_.cached(
      "SELECT n.name FROM run_summaries s JOIN metric_names n ON n.id = s.metric_id "
      "WHERE s.run_id = ?1 ORDER BY n.name");
  s.bind(1, run_id);
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::vector<SummaryRow> ResultsStore::summaries(int64_t run_id) {
  std::vector<SummaryRow> out;
  Statement s = db_.cached(
      "SELECT n.name, s.last, s.last_step, s.min, s.step_at_min, s.count "
      "FROM run_summaries s JOIN metric_names n ON n.id = s.metric_id "
      "WHERE s.run_id = ?1 ORDER BY n.name");
  s.bind(1, run_id);
  while (s.step()) {
    out.push_back({s.column_text(0), s.column_opt_double(1), s.column_int64(2),
                   s.column_opt_double(3), s.column_opt_int64(4), s.column_int64(5)});
  }
  return out;
}

// --- events and checkpoints ----------------------------------------------------------------------

int64_t ResultsStore::add_event(int64_t run_id, const std::string& kind,
                                const std::string& payload_json, std::optional<int64_t> step,
                                std::optional<double> wall) {
  require_json(payload_json, "event payload");
  Transaction txn(db_);
  require_run(run_id);
  db_.cached(
         "INSERT INTO events (run_id, step, wall, kind, payload_json, created_at) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind_all(run_id, step, wall, kind, payload_json, now_seconds())
      .run();
  int64_t id = db_.last_insert_rowid();
  txn.commit();
  return id;
}

std::vector<EventRow> ResultsStore::events(int64_t run_id, int64_t after_id) {
  std::vector<EventRow> out;
  Statement s = db_.cached(
      "SELECT id, run_id, step, wall, kind, payload_json, created_at FROM events "
      "WHERE run_id = ?1 AND id > ?2 ORDER BY id");
  s.bind_all(run_id, after_id);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_opt_int64(2),
                   s.column_opt_double(3), s.column_text(4), s.column_text(5), s.column_double(6)});
  }
  return out;
}

std::vector<TrainingSession> ResultsStore::sessions(int64_t run_id) {
  std::vector<TrainingSession> out;
  Statement s =
      db_.cached("SELECT payload_json FROM events WHERE run_id = ?1 AND kind = ?2 ORDER BY id");
  s.bind_all(run_id, std::string(kSessionEvent));
  while (s.step()) {
    const auto j = nlohmann::json::parse(s.column_text(0), nullptr, false);
    if (!j.is_object() || !j.contains("wall") || !j.contains("started_at") ||
        !j["wall"].is_number() || !j["started_at"].is_number())
      continue;
    out.push_back({j["wall"].get<double>(), j["started_at"].get<double>()});
  }
  return out;
}

int64_t ResultsStore::add_checkpoint(int64_t run_id, int64_t step, const std::string& path,
                                     int64_t bytes, const std::string& hash) {
  Transaction txn(db_);
  require_run(run_id);
  db_.cached(
         "INSERT INTO checkpoints (run_id, step, path, bytes, hash, created_at) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind_all(run_id, step, path, bytes, hash, now_seconds())
      .run();
  int64_t id = db_.last_insert_rowid();
  txn.commit();
  return id;
}

std::vector<CheckpointRow> ResultsStore::list_checkpoints(int64_t run_id) {
  std::vector<CheckpointRow> out;
  Statement s = db_.cached(
      "SELECT id, run_id, step, path, bytes, hash, created_at FROM checkpoints "
      "WHERE run_id = ?1 ORDER BY step, id");
  s.bind(1, run_id);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_int64(2), s.column_text(3),
                   s.column_int64(4), s.column_text(5), s.column_double(6)});
  }
  return out;
}

std::optional<CheckpointRow> ResultsStore::latest_checkpoint(int64_t run_id) {
  std::vector<CheckpointRow> all = list_checkpoints(run_id);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void ResultsStore::delete_checkpoint_row(int64_t checkpoint_id) {
  db_.cached("DELETE FROM checkpoints WHERE id = ?1").bind(1, checkpoint_id).run();
}

// --- reading runs --------------------------------------------------------------------------------

RunStatus ResultsStore::derive_status(const RunRow& row, double stale_after_seconds) const {
  if (row.status != RunStatus::kRunning) return row.status;
  // On this host the process table decides, at once: a trainer killed with SIGKILL (or by the
  // OOM killer) writes nothing more, and waiting for its heartbeat to go stale would show it
  // running for minutes. Elsewhere, or before the process recorded its pid, a stale heartbeat
  // is all there is to see.
  if (row.host == host_ && row.pid > 0) {
    return pid_alive(row.pid) ? RunStatus::kRunning : RunStatus::kLost;
  }
  const double seen = row.heartbeat_at.value_or(row.started_at.value_or(row.created_at));
  return now_seconds() - seen <= stale_after_seconds ? RunStatus::kRunning : RunStatus::kLost;
}

std::vector<RunRow> ResultsStore::query_runs(const std::string& where,
                                             const std::function<void(Statement&)>& bind) {
  std::vector<RunRow> out;
  Statement s = db_.cached(run_select() + where + " ORDER BY r.id");
  bind(s);
  while (s.step()) {
    out.push_back(read_run(s));
    out.back().effective_status = derive_status(out.back(), options_.lost_after_seconds);
  }
  return out;
}

std::vector<RunRow> ResultsStore::list_runs(const RunFilter& filter) {
  using Arg = std::variant<int64_t, std::string>;
  std::vector<std::string> clauses;
  std::vector<Arg> args;
  if (!filter.text.empty()) {
    clauses.push_back(
        "(r.name LIKE ?1 ESCAPE '\\' OR e.name LIKE ?1 ESCAPE '\\' OR r.family LIKE ?1 ESCAPE '\\' "
        "OR EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag LIKE ?1 ESCAPE '\\'))");
    args.emplace_back(like_pattern(filter.text));
  }
  auto add = [&](const std::string& clause, Arg arg) {
    args.push_back(std::move(arg));
    std::string c = clause;
    c.replace(c.find('?'), 1, "?" + std::to_string(args.size()));
    clauses.push_back(c);
  };
  if (!filter.family.empty()) add("r.family = ?", filter.family);
  if (!filter.tag.empty()) {
    add("EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag = ?)", trim(filter.tag));
  }
  if (filter.experiment_id) add("r.experiment_id = ?", *filter.experiment_id);
  if (filter.status) {
    // lost is a running run seen from outside; the exact status is checked after reading.
    RunStatus stored = *filter.status == RunStatus::kLost ? RunStatus::kRunning : *filter.status;
    add("r.status = ?", std::string(to_string(stored)));
  }
  std::string where;
  for (size_t i = 0; i < clauses.size(); ++i) where += (i == 0 ? " WHERE " : " AND ") + clauses[i];

  std::vector<RunRow> rows = query_runs(where, [&](Statement& s) {
    for (size_t i = 0; i < args.size(); ++i) {
      std::visit([&](const auto& v) { s.bind(static_cast<int>(i + 1), v); }, args[i]);
    }
  });
  if (filter.status) {
    rows.erase(
        std::remove_if(rows.begin(), rows.end(),
                       [&](const RunRow& r) { return r.effective_status != *filter.status; }),
        rows.end());
  }
  return rows;
}

std::optional<RunRow> ResultsStore::find_run(int64_t run_id) {
  std::vector<RunRow> rows =
      query_runs(" WHERE r.id = ?1", [&](Statement& s) { s.bind(1, run_id); });
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::optional<RunRow> ResultsStore::find_run_by_uuid(const std::string& uuid) {
  std::vector<RunRow> rows =
      query_runs(" WHERE r.uuid = ?1", [&](Statement& s) { s.bind(1, uuid); });
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

RunRow ResultsStore::get_run(int64_t run_id) {
  std::optional<RunRow> row = find_run(run_id);
  if (!row) throw no_run_error(run_id);
  return *row;
}

std::vector<int64_t> ResultsStore::lost_runs(double stale_after_seconds) {
  std::vector<int64_t> out;
  for (const RunRow& r : query_runs(" WHERE r.status = 'running'", [](Statement&) {})) {
    if (derive_status(r, stale_after_seconds) == RunStatus::kLost) out.push_back(r.id);
  }
  return out;
}

int64_t ResultsStore::data_version() {
  return db_.query_int64("PRAGMA data_version");
}

// --- user metadata -------------------------------------------------------------------------------

void ResultsStore::add_tag(int64_t run_id, const std::string& tag) {
  const std::string t = trim(tag);
  const bool control =
      std::any_of(t.begin(), t.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (t.empty() || control) {
    throw UserError("The tag \"" + tag + "\" is empty or contains control characters.",
                    "Use a short word such as \"baseline\".");
  }
  Transaction txn(db_);
  require_run(run_id);
  db_.cached("INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?1, ?2)").bind_all(run_id, t).run();
  txn.commit();
}

void ResultsStore::remove_tag(int64_t run_id, const std::string& tag) {
  db_.cached("DELETE FROM tags WHERE run_id = ?1 AND tag = ?2").bind_all(run_id, trim(tag)).run();
}

std::vector<std::string> ResultsStore::tags(int64_t run_id) {
  std::vector<std::string> out;
  Statement s = db_.cached("SELECT tag FROM tags WHERE run_id = ?1 ORDER BY tag");
  s.bind(1, run_id);
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::vector<std::string> ResultsStore::all_tags() {
  std::vector<std::string> out;
  Statement s = db_.cached("SELECT DISTINCT tag FROM tags ORDER BY tag");
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::string ResultsStore::note(int64_t run_id) {
  Statement s = db_.cached("SELECT text FROM notes WHERE run_id = ?1");
  return s.bind(1, run_id).step() ? s.column_text(0) : std::string();
}

void ResultsStore::set_note(int64_t run_id, const std::string& text) {
  Transaction txn(db_);
  require_run(run_id);
  if (text.empty()) {
    db_.cached("DELETE FROM notes WHERE run_id = ?1").bind(1, run_id).run();
  } else {
    db_.cached("INSERT OR REPLACE INTO notes (run_id, text, updated_at) VALUES (?1, ?2, ?3)")
        .bind_all(run_id, text, now_seconds())
        .run();
  }
  txn.commit();
}

void ResultsStore::delete_run(int64_t run_id) {
  // foreign_keys=ON (and, for metric_points, the runs_delete_points trigger) turns this into
  // range deletes of the run's points, summaries, events, checkpoints, tags and note: each table
  // is keyed or indexed by run_id first.
  db_.cached("DELETE FROM runs WHERE id = ?1").bind(1, run_id).run();
  if (db_.changes() == 0) require_run(run_id);
}

// --- import --------------------------------------------------------------------------------------

ImportResult ResultsStore::import_runs_from(const fs::path& other) {
  {
    // Opening it as a store first gives the same clear errors as opening it directly (missing
    // file, not a database, newer or older schema) before anything is attached.
    OpenOptions ro = options_;
    ro.mode = Database::Mode::kReadOnly;
    ResultsStore check(other, ro);
  }
  db_.prepare("ATTACH DATABASE ?1 AS src").bind(1, file_uri(other, "mode=ro")).run();
  struct Detach {
    Database& db;
    ~Detach() { sqlite3_exec(db.handle(), "DETACH DATABASE src", nullptr, nullptr, nullptr); }
  } detach{db_};

  ImportResult result;
  {
    Transaction txn(db_);
    db_.exec("INSERT OR IGNORE INTO main.metric_names (name) SELECT name FROM src.metric_names");
    std::vector<std::pair<int64_t, std::string>> src_runs;
    {
      Statement s = db_.prepare("SELECT id, uuid FROM src.runs ORDER BY id");
      while (s.step()) src_runs.emplace_back(s.column_int64(0), s.column_text(1));
    }
    // Owned (not cached) statements: they name the attached schema, which is gone after DETACH.
    Statement exists = db_.prepare("SELECT 1 FROM main.runs WHERE uuid = ?1");
    Statement add_exp = db_.prepare(
        "INSERT OR IGNORE INTO main.experiments (name, spec_json, created_at) "
        "SELECT e.name, e.spec_json, e.created_at FROM src.experiments e "
        "JOIN src.runs r ON r.experiment_id = e.id WHERE r.id = ?1");
    Statement add_run = db_.prepare(R"sql(
INSERT INTO main.runs (experiment_id, uuid, name, status, family, config_json, seed, host, pid,
  device, git_rev, torch_version, cuda_version, params_total, params_active, params_nonembed,
  total_steps, step, tokens, created_at, started_at, ended_at, heartbeat_at, error_text,
  ops_used)
SELECT me.id, r.uuid, r.name, r.status, r.family, r.config_json, r.seed, r.host, r.pid,
  r.device, r.git_rev, r.torch_version, r.cuda_version, r.params_total, r.params_active,
  r.params_nonembed, r.total_steps, r.step, r.tokens, r.created_at, r.started_at, r.ended_at,
  r.heartbeat_at, r.error_text, r.ops_used
FROM src.runs r JOIN src.experiments e ON e.id = r.experiment_id
JOIN main.experiments me ON me.name = e.name WHERE r.id = ?1)sql");
    // ?1 = the new run id, ?2 = the run id in src; metric ids are remapped by name.
    const char* copies[] = {
        R"sql(INSERT INTO main.metric_points (run_id, metric_id, step, tokens, wall, value)
SELECT ?1, m.id, p.step, p.tokens, p.wall, p.value FROM src.metric_points p
JOIN src.metric_names n ON n.id = p.metric_id JOIN main.metric_names m ON m.name = n.name
WHERE p.run_id = ?2)sql",
        R"sql(INSERT INTO main.run_summaries
  (run_id, metric_id, last, last_step, min, step_at_min, count)
SELECT ?1, m.id, s.last, s.last_step, s.min, s.step_at_min, s.count FROM src.run_summaries s
JOIN src.metric_names n ON n.id = s.metric_id JOIN main.metric_names m ON m.name = n.name
WHERE s.run_id = ?2)sql",
        R"sql(INSERT INTO main.events (run_id, step, wall, kind, payload_json, created_at)
SELECT ?1, step, wall, kind, payload_json, created_at FROM src.events WHERE run_id = ?2
ORDER BY id)sql",
        R"sql(INSERT INTO main.checkpoints (run_id, step, path, bytes, hash, created_at)
SELECT ?1, step, path, bytes, hash, created_at FROM src.checkpoints WHERE run_id = ?2
ORDER BY id)sql",
        "INSERT INTO main.tags (run_id, tag) SELECT ?1, tag FROM src.tags WHERE run_id = ?2",
        "INSERT INTO main.notes (run_id, text, updated_at) "
        "SELECT ?1, text, updated_at FROM src.notes WHERE run_id = ?2",
    };
    std::vector<Statement> copy;
    for (const char* sql : copies) copy.push_back(db_.prepare(sql));

    for (const auto& [src_id, uuid] : src_runs) {
      exists.reset();
      if (exists.bind(1, uuid).step()) {
        ++result.skipped;
        continue;
      }
      add_exp.reset();
      add_exp.bind(1, src_id).run();
      add_run.reset();
      add_run.bind(1, src_id).run();
      const int64_t new_id = db_.last_insert_rowid();
      for (Statement& c : copy) {
        c.reset();
        c.bind_all(new_id, src_id).run();
      }
      ++result.imported;
    }
    exists.reset();
    txn.commit();
  }
  return result;
}

std::string ResultsStore::integrity_check() {
  std::string out;
  Statement s = db_.prepare("PRAGMA integrity_check");
  while (s.step()) out += (out.empty() ? "" : "\n") + s.column_text(0);
  return out;
}

// --- MetricBuffer --------------------------------------------------------------------------------

MetricBuffer::MetricBuffer(ResultsStore& store, int64_t run_id, size_t max_points,
                           std::chrono::milliseconds max_age)
    : store_(store),
      run_id_(run_id),
      max_points_(std::max<size_t>(1, max_points)),
      max_age_(max_age) {
  pending_.reserve(max_points_);
}

MetricBuffer::~MetricBuffer() {
  try {
    flush();
  } catch (const std::exception& e) {
    // A destructor cannot throw; say what was lost rather than dropping it silently.
    std::cerr << "mmlab: " << pending_.size() << " metric points of run " << run_id_
              << " were not saved: " << e.what() << "\n";
  }
}

void MetricBuffer::add(std::string metric, int64_t step, int64_t tokens, double wall,
                       double value) {
  add(MetricPoint{std::move(metric), step, tokens, wall, value});
}

void MetricBuffer::add(MetricPoint point) {
  if (pending_.empty()) oldest_ = std::chrono::steady_clock::now();
  pending_.push_back(std::move(point));
  maybe_flush();
}

void MetricBuffer::maybe_flush() {
  if (pending_.size() >= max_points_ || std::chrono::steady_clock::now() - oldest_ >= max_age_) {
    flush();
  }
}

void MetricBuffer::flush() {
  if (pending_.empty()) return;
  store_.append_points(run_id_, pending_);
  pending_.clear();
}

size_t MetricBuffer::discard() {
  const size_t dropped = pending_.size();
  pending_.clear();
  return dropped;
}

}  // namespace mmlab::store
