// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/schema.h"

#include "core/util/error.h"

namespace mmlab::store {

const std::vector<std::string>& schema_migrations() {
  static const std::vector<std::string> migrations = {
      // 0 -> 1: the tables. Times are REAL seconds since the Unix epoch. metric_points and the
      // other per-run tables are clustered by run (WITHOUT ROWID, run_id first in the key), so a
      // curve is one contiguous range read and deleting a run is a range delete.
      R"sql(
PRAGMA application_id = 1835887714;

CREATE TABLE experiments (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  spec_json TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL
);

CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  name TEXT NOT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('queued', 'running', 'stopped', 'finished', 'failed', 'diverged')),
  family TEXT NOT NULL DEFAULT '',
  config_json TEXT NOT NULL DEFAULT '{}',
  seed INTEGER NOT NULL DEFAULT 0,
  host TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL DEFAULT 0,
  device TEXT NOT NULL DEFAULT '',
  git_rev TEXT NOT NULL DEFAULT '',
  torch_version TEXT NOT NULL DEFAULT '',
  cuda_version TEXT NOT NULL DEFAULT '',
  params_total INTEGER NOT NULL DEFAULT 0,
  params_active INTEGER NOT NULL DEFAULT 0,
  params_nonembed INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER NOT NULL DEFAULT 0,
  step INTEGER NOT NULL DEFAULT 0,
  tokens INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  started_at REAL,
  ended_at REAL,
  heartbeat_at REAL,
  error_text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_experiment ON runs (experiment_id);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE metric_names (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

-- No FOREIGN KEY clauses here, on purpose: checking both parents costs ~30% of the insert path
-- (two B-tree seeks per point), and the only writer, append_points(), already checks the run
-- and maps names to ids inside the same transaction. The trigger below gives the cascade.
CREATE TABLE metric_points (
  run_id INTEGER NOT NULL,
  metric_id INTEGER NOT NULL,
  step INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  wall REAL NOT NULL,
  value REAL,  -- NULL is NaN
  PRIMARY KEY (run_id, metric_id, step)
) WITHOUT ROWID;
CREATE TRIGGER runs_delete_points AFTER DELETE ON runs BEGIN
  DELETE FROM metric_points WHERE run_id = OLD.id;
END;

CREATE TABLE run_summaries (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  metric_id INTEGER NOT NULL REFERENCES metric_names(id),
  last REAL,
  last_step INTEGER NOT NULL,
  min REAL,
  step_at_min INTEGER,
  count INTEGER NOT NULL,
  PRIMARY KEY (run_id, metric_id)
) WITHOUT ROWID;

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER,
  wall REAL,
  kind TEXT NOT NULL,
  payload_json TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, id);

CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  path TEXT NOT NULL,
  bytes INTEGER NOT NULL DEFAULT 0,
  hash TEXT NOT NULL DEFAULT '',
  created_at REAL NOT NULL
);
CREATE INDEX checkpoints_by_run ON checkpoints (run_id, step);

CREATE TABLE tags (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_by_tag ON tags (tag);

CREATE TABLE notes (
  run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  text TEXT NOT NULL,
  updated_at REAL NOT NULL
);
)sql",
      // 1 -> 2: a run identity that survives copying between databases (import skips a run whose
      // uuid is already present). 128 random bits as 32 lowercase hex digits; rows of a version 1
      // file get one here. ALTER TABLE cannot add a UNIQUE column, hence the unique index.
      R"sql(
ALTER TABLE runs ADD COLUMN uuid TEXT;
UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;
CREATE UNIQUE INDEX runs_by_uuid ON runs (uuid);
)sql",
      // 2 -> 3: the op implementations a run's steps actually used (train.ops resolved), as a
      // JSON object op -> implementation; '' until its first step.
      R"sql(
ALTER TABLE runs ADD COLUMN ops_used TEXT NOT NULL DEFAULT '';
)sql",
  };
  return migrations;
}

int64_t identify(Database& db) {
  // One statement, so one snapshot: read one by one, the version could come from before another
  // process's first migration and the table count from after it, which looks like a foreign file.
  Statement s = db.prepare(
      "SELECT v.user_version, a.application_id, (SELECT count(*) FROM sqlite_schema) "
      "FROM pragma_user_version v, pragma_application_id a");
  s.step();
  const int64_t version = s.column_int64(0), app = s.column_int64(1), objects = s.column_int64(2);
  s.reset();
  const std::string file = db.path().string();
  const int64_t known = static_cast<int64_t>(schema_migrations().size());
  if (version > known) {
    throw UserError("The results database " + file + " was written by a newer mmlab (schema " +
                        std::to_string(version) + ", this build knows " + std::to_string(known) +
                        ").",
                    "Upgrade mmlab or open another database.");
  }
  // Version 0 is ours only while the file is empty (a fresh file, or one being created).
  const bool foreign = version > 0 ? app != kApplicationId : objects > 0 || app != 0;
  if (foreign) {
    throw UserError("The file " + file +
                        " is an SQLite database of another program, not an "
                        "mmlab results database.",
                    "Choose another file with --db.");
  }
  return version;
}

void migrate(Database& db, std::chrono::steady_clock::time_point deadline) {
  const int64_t known = static_cast<int64_t>(schema_migrations().size());
  int64_t version = 0;
  retry_while_busy(db, deadline, [&] { version = identify(db); });
  if (version == known) return;
  if (db.mode() == Database::Mode::kReadOnly) {
    throw UserError("The results database " + db.path().string() + " has an older schema (" +
                        std::to_string(version) +
                        ") and was opened read-only, so it cannot be "
                        "upgraded to schema " +
                        std::to_string(known) + ".",
                    "Open it once for writing (any `mmlab train` or `mmlab runs tag` of this "
                    "build upgrades it), then retry.");
  }
  while (version < known) {
    retry_while_busy(db, deadline, [&] {
      Transaction txn(db, Transaction::Kind::kExclusive);
      // Another process may have migrated between our read and our write lock.
      version = identify(db);
      if (version >= known) return;
      db.exec(schema_migrations()[static_cast<size_t>(version)]);
      db.exec("PRAGMA user_version = " + std::to_string(version + 1));
      txn.commit();
      ++version;
    });
  }
}

}  // namespace mmlab::store
