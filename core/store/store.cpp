// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/store.h"

#include <random>
#include <stdexcept>

#include "core/store/connection.h"
#include "core/store/schema.h"

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

}  // namespace

int ResultsStore::schema_version() {
  return static_cast<int>(schema_migrations().size());
}

ResultsStore::ResultsStore(const fs::path& path, OpenOptions options)
    : c_(std::make_shared<detail::Connection>(path, options)), reader_(*c_), metadata_(*c_) {}

ResultsStore::~ResultsStore() = default;

const fs::path& ResultsStore::path() const {
  return c_->path();
}

Database& ResultsStore::database() {
  return c_->db;
}

RunWriter ResultsStore::writer(int64_t run_id) {
  return RunWriter(c_, run_id);
}

// --- experiments and new runs --------------------------------------------------------------------

int64_t ResultsStore::ensure_experiment(const std::string& name, const std::string& spec_json) {
  if (detail::trim(name).empty()) {
    throw UserError("An experiment needs a name.", "Set \"name\" in the experiment file.");
  }
  detail::require_json(spec_json, "experiment spec");
  Transaction txn(c_->db);
  c_->db
      .cached(
          "INSERT INTO experiments (name, spec_json, created_at) VALUES (?1, ?2, ?3) "
          "ON CONFLICT (name) DO NOTHING")
      .bind_all(name, spec_json, now_seconds())
      .run();
  Statement get = c_->db.cached("SELECT id FROM experiments WHERE name = ?1");
  get.bind(1, name).step();
  int64_t id = get.column_int64(0);
  get.reset();
  txn.commit();
  return id;
}

int64_t ResultsStore::insert_run(const NewRun& run, double now) {
  if (run.status != RunStatus::kQueued && run.status != RunStatus::kRunning) {
    throw std::invalid_argument("create_run: a new run is queued or running");
  }
  detail::require_json(run.config_json, "run config");
  Statement exp = c_->db.cached("SELECT 1 FROM experiments WHERE id = ?1");
  if (!exp.bind(1, run.experiment_id).step()) {
    throw UserError("No experiment " + std::to_string(run.experiment_id) +
                        " in the results database " + path().string() + ".",
                    "Create it first (ensure_experiment).");
  }
  exp.reset();
  c_->db
      .cached(
          "INSERT INTO runs (experiment_id, uuid, name, status, family, config_json, seed, "
          "total_steps, git_rev, created_at, host) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
      .bind_all(run.experiment_id, run.uuid.empty() ? new_uuid() : run.uuid, run.name,
                to_string(run.status), run.family, run.config_json, run.seed, run.total_steps,
                run.git_rev, now, run.host)
      .run();
  return c_->db.last_insert_rowid();
}

int64_t ResultsStore::create_run(const NewRun& run) {
  return create_runs({run}).front();
}

std::vector<int64_t> ResultsStore::create_runs(const std::vector<NewRun>& runs) {
  std::vector<int64_t> ids;
  if (runs.empty()) return ids;
  Transaction txn(c_->db);
  const double now = now_seconds();
  for (const NewRun& run : runs) ids.push_back(insert_run(run, now));
  txn.commit();
  return ids;
}

// --- import --------------------------------------------------------------------------------------

ImportResult ResultsStore::import_runs_from(const fs::path& other) {
  {
    // Opening it as a store first gives the same clear errors as opening it directly (missing
    // file, not a database, newer or older schema) before anything is attached.
    OpenOptions ro = c_->options;
    ro.mode = Database::Mode::kReadOnly;
    ResultsStore check(other, ro);
  }
  c_->db.prepare("ATTACH DATABASE ?1 AS src").bind(1, file_uri(other, "mode=ro")).run();
  struct Detach {
    Database& db;
    ~Detach() { sqlite3_exec(db.handle(), "DETACH DATABASE src", nullptr, nullptr, nullptr); }
  } detach{c_->db};

  ImportResult result;
  {
    Transaction txn(c_->db);
    c_->db.exec("INSERT OR IGNORE INTO main.metric_names (name) SELECT name FROM src.metric_names");
    std::vector<std::pair<int64_t, std::string>> src_runs;
    {
      Statement s = c_->db.prepare("SELECT id, uuid FROM src.runs ORDER BY id");
      while (s.step()) src_runs.emplace_back(s.column_int64(0), s.column_text(1));
    }
    // Owned (not cached) statements: they name the attached schema, which is gone after DETACH.
    Statement exists = c_->db.prepare("SELECT 1 FROM main.runs WHERE uuid = ?1");
    Statement add_exp = c_->db.prepare(
        "INSERT OR IGNORE INTO main.experiments (name, spec_json, created_at) "
        "SELECT e.name, e.spec_json, e.created_at FROM src.experiments e "
        "JOIN src.runs r ON r.experiment_id = e.id WHERE r.id = ?1");
    Statement add_run = c_->db.prepare(R"sql(
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
    for (const char* sql : copies) copy.push_back(c_->db.prepare(sql));

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
      const int64_t new_id = c_->db.last_insert_rowid();
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
  Statement s = c_->db.prepare("PRAGMA integrity_check");
  while (s.step()) out += (out.empty() ? "" : "\n") + s.column_text(0);
  return out;
}

}  // namespace mmlab::store
