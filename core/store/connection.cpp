// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/connection.h"

#include <unistd.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "core/store/schema.h"

namespace mmlab::store {
namespace fs = std::filesystem;

namespace {

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

}  // namespace

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

namespace detail {

Connection::Connection(const fs::path& path, OpenOptions options_in)
    : options(options_in), db(open_database(path, options_in)), host(current_host()) {
  const auto deadline = std::chrono::steady_clock::now() + options.busy_timeout;
  // The busy handler first: everything after may wait for another process.
  db.set_busy_timeout(options.busy_timeout);
  // Nothing about the file changes before it is known to be ours (or empty): it is identified by
  // reading its header, user_version and application_id first, and until then closing the
  // connection must not checkpoint another program's write-ahead log into its file.
  sqlite3_db_config(db.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  retry_while_busy(db, deadline, [&] { identify(db); });
  sqlite3_db_config(db.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  if (options.mode == Database::Mode::kReadWrite) {
    switch_to_wal(db, deadline);
    // In WAL mode NORMAL syncs at checkpoints only: a commit survives a killed process (the OS
    // holds the pages) and may be lost only on power failure, never corrupting the file.
    db.exec("PRAGMA synchronous = NORMAL");
  }
  db.exec("PRAGMA foreign_keys = ON");
  migrate(db, deadline);
}

void Connection::require_run(int64_t run_id) {
  Statement s = db.cached("SELECT 1 FROM runs WHERE id = ?1");
  if (!s.bind(1, run_id).step()) throw no_run_error(run_id);
}

UserError Connection::no_run_error(int64_t run_id) const {
  return UserError(
      "No run " + std::to_string(run_id) + " in the results database " + path().string() + ".",
      "List the runs with `mmlab runs list`.");
}

int64_t Connection::metric_id(const std::string& name) {
  auto it = metric_ids_.find(name);
  if (it != metric_ids_.end()) return it->second;
  db.cached("INSERT INTO metric_names (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
      .bind(1, name)
      .run();
  Statement get = db.cached("SELECT id FROM metric_names WHERE name = ?1");
  get.bind(1, name).step();
  int64_t id = get.column_int64(0);
  metric_ids_.emplace(name, id);
  return id;
}

std::optional<int64_t> Connection::find_metric_id(std::string_view name) {
  auto it = metric_ids_.find(std::string(name));
  if (it != metric_ids_.end()) return it->second;
  Statement get = db.cached("SELECT id FROM metric_names WHERE name = ?1");
  if (!get.bind(1, name).step()) return std::nullopt;
  int64_t id = get.column_int64(0);
  // Only cache names read outside a write transaction: a name inserted by an uncommitted
  // transaction of ours could be rolled back.
  if (!db.in_transaction()) metric_ids_.emplace(std::string(name), id);
  return id;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return {};
  size_t end = text.find_last_not_of(space);
  return text.substr(begin, end - begin + 1);
}

void require_json(const std::string& text, const char* what) {
  if (!nlohmann::json::accept(text)) {
    throw UserError(std::string("The ") + what + " to store is not valid JSON.",
                    "Pass a JSON document (\"{}\" when there is nothing to record).");
  }
}

}  // namespace detail
}  // namespace mmlab::store
