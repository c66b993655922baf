// SPDX-License-Identifier: GPL-3.0-or-later
// Thin RAII layer over the sqlite3 C API: handles in unique_ptrs, a Statement with typed
// bind/column helpers, a Transaction guard, and one place that turns a result code into an
// exception naming the database file. Nothing here knows the mmlab schema.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "core/util/error.h"

namespace mmlab::store {

/// A SQLite failure the user cannot fix by changing an input (a bug, a constraint we should have
/// checked first, an I/O error). `what()` names the database file and carries SQLite's message.
/// Failures the user can fix (full disk, not a database, locked too long, read-only file) are
/// thrown as mmlab::UserError / mmlab::ResourceError instead.
class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& message, int sqlite_code)
      : std::runtime_error(message), sqlite_code_(sqlite_code) {}
  /// The extended SQLite result code (SQLITE_CONSTRAINT_UNIQUE, …).
  int sqlite_code() const { return sqlite_code_; }

 private:
  int sqlite_code_;
};

/// Another connection holds a lock this one needs (SQLITE_BUSY, SQLITE_LOCKED). Its own type, so
/// that the few statements SQLite runs without waiting in the busy handler can be retried.
class BusyError : public UserError {
 public:
  using UserError::UserError;
};

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

class Database;

/// `path` as an SQLite URI, "file:/absolute/path?<query>", every byte that could be URI syntax
/// ('?', '#', '%', …) percent-encoded so that any file name stays a file name.
std::string file_uri(const std::filesystem::path& path, const std::string& query);

/// A prepared statement. Either owns its sqlite3_stmt (Database::prepare) or borrows one from the
/// connection's cache (Database::cached); a borrowed one is reset on destruction, so it never
/// keeps a read transaction (and an old WAL snapshot) open after use.
class Statement {
 public:
  Statement(Database& db, StmtHandle owned);
  Statement(Database& db, sqlite3_stmt* borrowed);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in sqlite3_bind_*. A NaN double is stored as NULL (SQLite has no
  // NaN); an empty optional binds NULL.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, std::nullptr_t);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, nullptr);
  }
  /// Binds every argument in order, starting at parameter 1.
  template <class... Args>
  Statement& bind_all(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
    return *this;
  }

  /// Advances; true when a row is available, false when the statement is done.
  bool step();
  /// Steps to completion (for INSERT/UPDATE/DELETE), then resets so the statement can run again.
  void run();
  /// Rewinds and clears the bindings.
  void reset();

  // Columns are 0-based, as in sqlite3_column_*. A NULL reads as 0 / "" / NaN / nullopt.
  bool is_null(int column) const;
  int64_t column_int64(int column) const;
  double column_double(int column) const;  ///< NULL reads as NaN (the inverse of bind(NaN))
  std::string column_text(int column) const;
  std::optional<int64_t> column_opt_int64(int column) const;
  std::optional<double> column_opt_double(int column) const;

  sqlite3_stmt* raw() const { return stmt_; }

 private:
  Database* db_;
  StmtHandle owned_;
  sqlite3_stmt* stmt_;
};

/// One connection to one database file. Not thread-safe: use one Database per thread.
class Database {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  /// How the file is opened, beyond its mode.
  struct Flags {
    bool create_missing = true;  ///< kReadWrite: create the file when it does not exist
    /// kReadOnly: the file cannot change while open (SQLite's immutable=1: no locks, and no
    /// -wal/-shm files are read or created). Only right when no write-ahead log exists.
    bool immutable = false;
  };

  /// Opens `path` (through a URI built from its absolute path, so no character in it is taken
  /// for URI syntax). Does not create its directory, run pragmas or check the file's format (a
  /// non-database file fails on first use with SQLITE_NOTADB).
  Database(std::filesystem::path path, Mode mode, Flags flags);
  Database(std::filesystem::path path, Mode mode) : Database(std::move(path), mode, Flags{}) {}
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// A fresh statement owned by the caller.
  Statement prepare(std::string_view sql);
  /// A statement from this connection's cache (prepared once per connection): for hot paths.
  /// The returned statement must not be used after another cached() of the same SQL text.
  Statement cached(const std::string& sql);
  /// Runs one or more statements without results.
  void exec(const std::string& sql);
  /// The single value of a one-row, one-column query (PRAGMA user_version, COUNT(*), …).
  int64_t query_int64(const std::string& sql);
  std::string query_text(const std::string& sql);

  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }
  int changes() const { return sqlite3_changes(db_.get()); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

  /// Waits for another connection's lock up to `timeout` (a busy handler), after which the
  /// statement fails with a BusyError saying so. Call once, right after opening.
  void set_busy_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds busy_timeout() const { return busy_timeout_; }
  /// The error for a lock that stayed held for the whole busy timeout.
  BusyError busy_timeout_error() const;

  /// Throws the exception that fits `rc` (see StoreError), naming this file and `context`.
  [[noreturn]] void fail(int rc, std::string_view context) const;
  /// fail() unless rc is SQLITE_OK / SQLITE_ROW / SQLITE_DONE.
  void check(int rc, std::string_view context) const {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) fail(rc, context);
  }

  const std::filesystem::path& path() const { return path_; }
  Mode mode() const { return mode_; }
  bool immutable() const { return flags_.immutable; }
  sqlite3* handle() const { return db_.get(); }

 private:
  static int on_busy(void* self, int attempt);

  std::filesystem::path path_;
  Mode mode_;
  Flags flags_;
  std::chrono::milliseconds busy_timeout_{0};
  std::chrono::steady_clock::time_point busy_since_{};
  // Set when the busy handler gave up, so that fail() tells a lock held for the whole timeout
  // apart from SQLITE_BUSY returned at once (SQLite skips the handler where waiting could
  // deadlock).
  mutable bool busy_gave_up_ = false;
  // Declared before db_ so the statements are finalized before the connection closes.
  std::unordered_map<std::string, StmtHandle> cache_;
  DbHandle db_;
};

/// A write (or read) transaction that rolls back unless commit() is reached. kImmediate takes the
/// write lock at BEGIN, so a busy database is waited for (busy_timeout) up front instead of
/// failing with SQLITE_BUSY when a read transaction tries to upgrade halfway.
class Transaction {
 public:
  /// kExclusive also keeps readers out in rollback-journal mode; in WAL mode it is kImmediate.
  enum class Kind { kDeferred, kImmediate, kExclusive };
  explicit Transaction(Database& db, Kind kind = Kind::kImmediate);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

/// Runs `attempt` again, with growing pauses, while it fails with a BusyError and `deadline` has
/// not passed; then the BusyError says the busy timeout ran out. For statements that SQLite may
/// refuse with SQLITE_BUSY without calling the busy handler.
template <class F>
void retry_while_busy(const Database& db, std::chrono::steady_clock::time_point deadline,
                      F attempt) {
  for (std::chrono::milliseconds pause{1};; pause = std::min(pause * 2, decltype(pause){50})) {
    try {
      attempt();
      return;
    } catch (const BusyError&) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) throw db.busy_timeout_error();
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    }
  }
}

}  // namespace mmlab::store
