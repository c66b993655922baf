// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/sqlite.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <limits>
#include <thread>
#include <utility>

#include "core/util/error.h"

namespace mmlab::store {

// --- Statement -----------------------------------------------------------------------------------

Statement::Statement(Database& db, StmtHandle owned)
    : db_(&db), owned_(std::move(owned)), stmt_(owned_.get()) {}

Statement::Statement(Database& db, sqlite3_stmt* borrowed) : db_(&db), stmt_(borrowed) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), owned_(std::move(other.owned_)), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement::~Statement() {
  // A borrowed (cached) statement goes back to the cache rewound: an un-reset SELECT would keep
  // its read transaction, pinning an old WAL snapshot and blocking checkpoints.
  if (stmt_ != nullptr && !owned_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Statement& Statement::bind(int index, int64_t value) {
  db_->check(sqlite3_bind_int64(stmt_, index, value), "binding a parameter");
  return *this;
}

Statement& Statement::bind(int index, double value) {
  // SQLite would turn NaN into NULL anyway; doing it here makes the convention explicit.
  int rc = std::isnan(value) ? sqlite3_bind_null(stmt_, index)
                             : sqlite3_bind_double(stmt_, index, value);
  db_->check(rc, "binding a parameter");
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  db_->check(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
      "binding a parameter");
  return *this;
}

Statement& Statement::bind(int index, std::nullptr_t) {
  db_->check(sqlite3_bind_null(stmt_, index), "binding a parameter");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // With sqlite3_prepare_v2 statements, sqlite3_reset() returns the same error and leaves its
  // message in place, so rewinding first keeps the statement reusable without losing the text.
  std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  if (sql.size() > 80) sql = sql.substr(0, 77) + "...";
  sqlite3_reset(stmt_);
  db_->fail(rc, "running \"" + sql + "\"");
}

void Statement::run() {
  while (step()) {
  }
  sqlite3_reset(stmt_);
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::column_int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double Statement::column_double(int column) const {
  if (is_null(column)) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(stmt_, column);
}

std::string Statement::column_text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<int64_t> Statement::column_opt_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_int64(column);
}

std::optional<double> Statement::column_opt_double(int column) const {
  if (is_null(column)) return std::nullopt;
  return sqlite3_column_double(stmt_, column);
}

// --- Database ------------------------------------------------------------------------------------

std::string file_uri(const std::filesystem::path& path, const std::string& query) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out + "?" + query;
}

Database::Database(std::filesystem::path path, Mode mode, Flags flags)
    : path_(std::move(path)), mode_(mode), flags_(flags) {
  // NOMUTEX: a Database is used by one thread at a time (documented), so SQLite's per-call
  // connection mutex is pure overhead on the insert path. The URI's mode must agree with the
  // flags (SQLite refuses a URI asking for more than the flags allow).
  std::string query;
  int flags_rw = 0;
  if (mode == Mode::kReadOnly) {
    query = flags_.immutable ? "mode=ro&immutable=1" : "mode=ro";
    flags_rw = SQLITE_OPEN_READONLY;
  } else if (flags_.create_missing) {
    query = "mode=rwc";
    flags_rw = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else {
    query = "mode=rw";
    flags_rw = SQLITE_OPEN_READWRITE;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(file_uri(path_, query).c_str(), &raw,
                           SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX | flags_rw, nullptr);
  db_.reset(raw);  // sqlite3_open_v2 allocates a handle even when it fails
  if (rc != SQLITE_OK) fail(rc, "opening it");
  sqlite3_extended_result_codes(raw, 1);
}

Database::~Database() = default;

Statement Database::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtHandle handle(raw);
  if (rc != SQLITE_OK) fail(rc, "preparing \"" + std::string(sql.substr(0, 80)) + "\"");
  return Statement(*this, std::move(handle));
}

Statement Database::cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtHandle handle(raw);
    if (rc != SQLITE_OK) fail(rc, "preparing \"" + sql.substr(0, 80) + "\"");
    it = cache_.emplace(sql, std::move(handle)).first;
  }
  sqlite3_reset(it->second.get());
  sqlite3_clear_bindings(it->second.get());
  return Statement(*this, it->second.get());
}

void Database::exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
  sqlite3_free(message);  // sqlite3_errmsg() still holds the text for fail()
  if (rc != SQLITE_OK) {
    std::string head = sql.substr(0, sql.find_first_of("(\n"));
    fail(rc, "running \"" + head.substr(0, 80) + "\"");
  }
}

int64_t Database::query_int64(const std::string& sql) {
  Statement stmt = prepare(sql);
  return stmt.step() ? stmt.column_int64(0) : 0;
}

std::string Database::query_text(const std::string& sql) {
  Statement stmt = prepare(sql);
  return stmt.step() ? stmt.column_text(0) : std::string();
}

void Database::set_busy_timeout(std::chrono::milliseconds timeout) {
  busy_timeout_ = timeout;
  sqlite3_busy_handler(db_.get(), &Database::on_busy, this);
}

int Database::on_busy(void* self, int attempt) {
  auto& db = *static_cast<Database*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (attempt == 0) {
    db.busy_since_ = now;
    db.busy_gave_up_ = false;
  }
  const auto waited = now - db.busy_since_;
  if (waited >= db.busy_timeout_) {
    db.busy_gave_up_ = true;
    return 0;
  }
  // Short pauses first: a trainer's transaction is a few milliseconds.
  const std::chrono::steady_clock::duration pause =
      std::chrono::milliseconds(attempt < 6 ? 1 << attempt : 50);
  std::this_thread::sleep_for(std::min(pause, db.busy_timeout_ - waited));
  return 1;
}

BusyError Database::busy_timeout_error() const {
  return BusyError("The results database " + path_.string() +
                       " stayed locked by another process for longer than the busy timeout (" +
                       std::to_string(busy_timeout_.count()) + " ms).",
                   "Retry when the other mmlab command has finished.");
}

void Database::fail(int rc, std::string_view context) const {
  const std::string file = path_.string();
  std::string detail = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  if (detail.empty() || detail == "not an error") detail = sqlite3_errstr(rc);
  // An I/O error whose system call failed with ENOSPC is a full disk too (SQLite reports
  // SQLITE_FULL only for some of its writes, e.g. not when growing the -shm file).
  const int system_errno = db_ ? sqlite3_system_errno(db_.get()) : 0;
  const bool disk_full =
      (rc & 0xff) == SQLITE_FULL ||
      ((rc & 0xff) == SQLITE_IOERR && (system_errno == ENOSPC || system_errno == EDQUOT));
  if (disk_full) {
    throw ResourceError("The disk is full while writing the results database " + file + ".",
                        "Free some space (or choose another --db location) and try again.");
  }
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      throw UserError("The file " + file + " is not an SQLite database.",
                      "Choose another file with --db, or move this one away.");
    case SQLITE_CORRUPT:
      throw UserError("The results database " + file + " is damaged (" + detail + ").",
                      "Restore it from a backup, or choose another file with --db.");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      if (std::exchange(busy_gave_up_, false)) throw busy_timeout_error();
      // Returned without waiting: SQLite does so where waiting could deadlock.
      throw BusyError("The results database " + file + " is locked by another process.",
                      "Retry when the other mmlab command has finished.");
    case SQLITE_READONLY:
      throw UserError("The results database " + file + " cannot be written (" + detail + ").",
                      "Check the permissions of the file and its directory, or choose another "
                      "file with --db.");
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      throw UserError("Cannot open the results database " + file + " (" + detail + ").",
                      "Check that its directory exists and is writable, or choose another file "
                      "with --db.");
    default:
      throw StoreError("SQLite error in the results database " + file + " while " +
                           std::string(context) + ": " + detail + " (code " + std::to_string(rc) +
                           ").",
                       rc);
  }
}

// --- Transaction ---------------------------------------------------------------------------------

Transaction::Transaction(Database& db, Kind kind) : db_(db) {
  db_.exec(kind == Kind::kImmediate   ? "BEGIN IMMEDIATE"
           : kind == Kind::kExclusive ? "BEGIN EXCLUSIVE"
                                      : "BEGIN");
}

Transaction::~Transaction() {
  // SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR): only roll back a
  // transaction that is still open. Errors are ignored: a destructor cannot report them, and a
  // failed ROLLBACK leaves nothing committed anyway.
  if (!done_ && db_.in_transaction()) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace mmlab::store
