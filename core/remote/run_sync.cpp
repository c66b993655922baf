// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/run_sync.h"

#include <sqlite3.h>

#include "core/util/error.h"

namespace mmlab::remote {

namespace fs = std::filesystem;
using store::Database;
using store::ResultsStore;
using store::Statement;
using store::Transaction;

namespace {

// ATTACHes `path` read-only as `src` for the life of this object.
struct Attached {
  Database& db;
  Attached(Database& d, const fs::path& path) : db(d) {
    db.prepare("ATTACH DATABASE ?1 AS src").bind(1, store::file_uri(path, "mode=ro")).run();
  }
  ~Attached() { sqlite3_exec(db.handle(), "DETACH DATABASE src", nullptr, nullptr, nullptr); }
};

}  // namespace

void write_run_snapshot(const fs::path& source, int64_t run_id, const fs::path& dest,
                        int64_t after_step) {
  {
    // Opening the source as a store gives its clear errors (missing, another schema) and checks
    // the run exists before anything is written.
    store::OpenOptions ro;
    ro.mode = Database::Mode::kReadOnly;
    ResultsStore src(source, ro);
    src.reader().get_run(run_id);
  }
  std::error_code ec;
  if (fs::exists(dest, ec)) {
    throw UserError("The snapshot file " + dest.string() + " exists already.",
                    "Remove it or give another --out.");
  }
  ResultsStore snap(dest);  // a fresh database of this build's schema
  Database& db = snap.database();
  Attached attached(db, source);
  // One write transaction on the snapshot: every read of src inside it sees one commit of the
  // trainer, so the run row, its summaries and its points agree.
  Transaction txn(db);
  // Same schema version on both sides (checked above), so the columns line up for SELECT *.
  db.exec("INSERT INTO main.metric_names SELECT * FROM src.metric_names");
  const char* copies[] = {
      "INSERT INTO main.experiments SELECT e.* FROM src.experiments e JOIN src.runs r "
      "ON r.experiment_id = e.id WHERE r.id = ?1",
      "INSERT INTO main.runs SELECT * FROM src.runs WHERE id = ?1",
      "INSERT INTO main.metric_points SELECT * FROM src.metric_points WHERE run_id = ?1 AND "
      "step > ?2",
      "INSERT INTO main.run_summaries SELECT * FROM src.run_summaries WHERE run_id = ?1",
      "INSERT INTO main.events SELECT * FROM src.events WHERE run_id = ?1",
      "INSERT INTO main.checkpoints SELECT * FROM src.checkpoints WHERE run_id = ?1",
  };
  for (const char* sql : copies) {
    Statement s = db.prepare(sql);
    const int params = sqlite3_bind_parameter_count(s.raw());
    s.bind(1, run_id);
    if (params > 1) s.bind(2, after_step);
    s.run();
  }
  txn.commit();
}

SyncResult merge_run_snapshot(ResultsStore& local, const fs::path& snapshot, bool full) {
  std::string uuid;
  {
    store::OpenOptions ro;
    ro.mode = Database::Mode::kReadOnly;
    ResultsStore snap(snapshot, ro);
    auto runs = snap.reader().list_runs();
    if (runs.size() != 1) {
      throw UserError("The run snapshot " + snapshot.string() + " does not hold exactly one run.",
                      "Sync again.");
    }
    uuid = runs[0].uuid;
  }
  SyncResult result;
  result.uuid = uuid;
  if (!local.reader().find_run_by_uuid(uuid)) {
    // New here: exactly `mmlab runs import`.
    local.import_runs_from(snapshot);
    result.created = true;
  }
  const int64_t id = local.reader().find_run_by_uuid(uuid)->id;
  result.run_id = id;
  Database& db = local.database();
  {
    Attached attached(db, snapshot);
    Transaction txn(db);
    db.exec("INSERT OR IGNORE INTO main.metric_names (name) SELECT name FROM src.metric_names");
    if (!result.created) {
      // The trainer's columns follow the remote run; the row keeps its local id and experiment.
      db.prepare(R"sql(
UPDATE main.runs SET (status, host, pid, device, git_rev, torch_version, cuda_version,
  params_total, params_active, params_nonembed, total_steps, step, tokens, started_at, ended_at,
  heartbeat_at, error_text, ops_used) =
 (SELECT status, host, pid, device, git_rev, torch_version, cuda_version, params_total,
  params_active, params_nonembed, total_steps, step, tokens, started_at, ended_at, heartbeat_at,
  error_text, ops_used FROM src.runs WHERE uuid = ?2)
WHERE id = ?1)sql")
          .bind_all(id, uuid)
          .run();
    }
    if (full) db.prepare("DELETE FROM main.metric_points WHERE run_id = ?1").bind(1, id).run();
    const char* copies[] = {
        // A repeated (run, metric, step) takes the remote value, as append_points() does for a
        // resumed run that trains a step again.
        R"sql(INSERT OR REPLACE INTO main.metric_points (run_id, metric_id, step, tokens, wall, value)
SELECT ?1, m.id, p.step, p.tokens, p.wall, p.value FROM src.metric_points p
JOIN src.metric_names n ON n.id = p.metric_id JOIN main.metric_names m ON m.name = n.name)sql",
        "DELETE FROM main.run_summaries WHERE run_id = ?1",
        R"sql(INSERT INTO main.run_summaries
  (run_id, metric_id, last, last_step, min, step_at_min, count)
SELECT ?1, m.id, s.last, s.last_step, s.min, s.step_at_min, s.count FROM src.run_summaries s
JOIN src.metric_names n ON n.id = s.metric_id JOIN main.metric_names m ON m.name = n.name)sql",
        "DELETE FROM main.events WHERE run_id = ?1",
        "INSERT INTO main.events (run_id, step, wall, kind, payload_json, created_at) "
        "SELECT ?1, step, wall, kind, payload_json, created_at FROM src.events ORDER BY id",
        "DELETE FROM main.checkpoints WHERE run_id = ?1",
        "INSERT INTO main.checkpoints (run_id, step, path, bytes, hash, created_at) "
        "SELECT ?1, step, path, bytes, hash, created_at FROM src.checkpoints ORDER BY id",
    };
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; ++i) {
      // A new run got its points, summaries, events and checkpoints from the import above.
      if (result.created) break;
      db.prepare(copies[i]).bind(1, id).run();
      if (i == 0) result.points = db.changes();
    }
    txn.commit();
  }
  if (result.created) {
    Statement count = db.prepare("SELECT count(*) FROM metric_points WHERE run_id = ?1");
    count.bind(1, id);
    if (count.step()) result.points = count.column_int64(0);
  }
  result.last_step = last_synced_step(local, uuid);
  return result;
}

int64_t last_synced_step(ResultsStore& local, const std::string& uuid) {
  Statement s = local.database().prepare(
      "SELECT coalesce(max(p.step), -1) FROM metric_points p JOIN runs r ON r.id = p.run_id "
      "WHERE r.uuid = ?1");
  s.bind(1, uuid);
  return s.step() ? s.column_int64(0) : 0;
}

}  // namespace mmlab::remote
