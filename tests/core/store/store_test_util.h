// SPDX-License-Identifier: GPL-3.0-or-later
// Helpers shared by the results-store tests.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/store/store.h"

namespace mmlab::store::testing {

/// A queued run in experiment `experiment` (created on demand).
inline int64_t make_run(ResultsStore& store, const std::string& name,
                        const std::string& family = "mamba",
                        const std::string& experiment = "exp") {
  NewRun run;
  run.experiment_id = store.ensure_experiment(experiment);
  run.name = name;
  run.family = family;
  run.config_json = R"({"d_model": 64})";
  run.seed = 7;
  run.total_steps = 100;
  return store.create_run(run);
}

/// Points whose run or metric name does not exist (metric_points has no FOREIGN KEY clauses, so
/// PRAGMA foreign_key_check does not cover it).
inline constexpr char kOrphanPoints[] =
    "SELECT count(*) FROM metric_points WHERE run_id NOT IN (SELECT id FROM runs) "
    "OR metric_id NOT IN (SELECT id FROM metric_names)";

/// `n` points of metric `metric` at steps first, first+1, … with value f(step).
template <class F>
std::vector<MetricPoint> series(const std::string& metric, int64_t first, int64_t n, F f) {
  std::vector<MetricPoint> out;
  for (int64_t s = first; s < first + n; ++s) {
    out.push_back({metric, s, s * 1024, 0.5 * static_cast<double>(s), f(s)});
  }
  return out;
}

/// COUNT(*)-style query on a plain connection (independent of the code under test).
inline int64_t query_int(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  int64_t value = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

/// Runs SQL on a plain read-write connection; returns SQLite's result code.
inline int exec_raw(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return rc;
}

}  // namespace mmlab::store::testing
