// SPDX-License-Identifier: GPL-3.0-or-later
// Opening a results database in the situations that used to go wrong: another program's file
// (changed before it was refused), a folder or file this process cannot write (read-only
// commands failed there), a database another process has locked (the error claimed a timeout
// that had not passed), and a missing file a command needs to exist (it was created).
//
// Unwritable files are made so for real: as root, permissions do not stop writes, so the reader
// runs in a forked child that has given up root (uid/gid 65534, "nobody"); otherwise the test
// removes its own write permissions.
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>

#include "core/store/schema.h"
#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

namespace fs = std::filesystem;
using testing::exec_raw;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::query_int;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Nanoseconds of the last modification, to see that a reader did not touch the file.
int64_t mtime_ns(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

bool side_files_exist(const fs::path& db) {
  return fs::exists(db.string() + "-wal") || fs::exists(db.string() + "-shm") ||
         fs::exists(db.string() + "-journal");
}

std::string journal_mode(const fs::path& db) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* s = nullptr;
  std::string mode;
  if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    mode = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  sqlite3_close(h);
  return mode;
}

// Runs `body` in a forked child that cannot write what the caller made unwritable (as root: a
// child that has dropped to uid/gid 65534) and returns the text it produced, or "error: …".
std::string as_unprivileged_reader(const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "error: pipe";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    try {
      if (::geteuid() == 0 &&
          (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) {
        out = "error: could not drop root";
      } else {
        out = body();
      }
    } catch (const std::exception& e) {
      out = std::string("error: ") + e.what();
    }
    ssize_t ignored = ::write(fds[1], out.data(), out.size());
    (void)ignored;
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, buf + n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

// A database with one run and three points, closed (so no -wal/-shm files remain).
int64_t make_database(const fs::path& path) {
  ResultsStore store(path);
  const int64_t run = testing::make_run(store, "r");
  store.writer(run).append_points(testing::series("loss", 1, 3, [](int64_t s) { return 1.0 / s; }));
  return run;
}

// What a reader reports: "<runs> <points> immutable=<0|1>".
std::string read_summary(const fs::path& path, int64_t run) {
  ResultsStore reader(path, OpenOptions{Database::Mode::kReadOnly});
  return std::to_string(reader.reader().list_runs().size()) + " " +
         std::to_string(reader.reader().points(run, "loss").size()) +
         " immutable=" + (reader.database().immutable() ? "1" : "0");
}

// As root the folder only needs to be traversable by the unprivileged child; otherwise its
// permissions are the ones under test.
void make_unwritable(const fs::path& p, bool is_dir) {
  using fs::perms;
  const perms read_only = is_dir ? perms::owner_read | perms::owner_exec | perms::group_read |
                                       perms::group_exec | perms::others_read | perms::others_exec
                                 : perms::owner_read | perms::group_read | perms::others_read;
  fs::permissions(p, read_only);
}

TEST(StoreOpen, AnotherProgramsFileStaysByteIdenticalWhenRefused) {
  test::TempDir dir;
  const auto path = dir / "other.sqlite";
  // Rollback-journal mode, as most programs leave their files: switching it to WAL would
  // rewrite its header.
  ASSERT_EQ(exec_raw(path, "CREATE TABLE runs (x); INSERT INTO runs VALUES (1);"), SQLITE_OK);
  ASSERT_EQ(journal_mode(path), "delete");
  const std::string before = read_bytes(path);
  const int64_t mtime = mtime_ns(path);
  try {
    ResultsStore store(path);
    FAIL() << "a foreign database was opened";
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), "The file " + path.string() +
                               " is an SQLite database of another program, not an mmlab "
                               "results database.");
    EXPECT_EQ(e.hint(), "Choose another file with --db.");
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(mtime_ns(path), mtime);
  EXPECT_EQ(journal_mode(path), "delete");
  EXPECT_FALSE(side_files_exist(path));
}

TEST(StoreOpen, AnotherProgramsWalFileKeepsItsLogWhenRefused) {
  test::TempDir dir;
  const auto path = dir / "other-wal.sqlite";
  {
    // A WAL-mode file whose last commits are still in its -wal (its program closed without
    // checkpointing): closing our connection must not checkpoint them into the file.
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
    sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    ASSERT_EQ(sqlite3_exec(h,
                           "PRAGMA journal_mode = WAL; PRAGMA user_version = 3; "
                           "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(h);
  }
  ASSERT_TRUE(fs::exists(path.string() + "-wal"));
  const std::string file = read_bytes(path), wal = read_bytes(path.string() + "-wal");
  EXPECT_THROW(ResultsStore{path}, UserError);
  EXPECT_EQ(read_bytes(path), file);
  EXPECT_EQ(read_bytes(path.string() + "-wal"), wal);
}

TEST(StoreOpen, ReadOnlyOpenWorksInAFolderItCannotWrite) {
  test::TempDir dir;
  const auto folder = dir / "archive";
  const auto path = folder / "results.sqlite";
  const int64_t run = make_database(path);
  ASSERT_FALSE(side_files_exist(path));
  const std::string before = read_bytes(path);
  const int64_t mtime = mtime_ns(path);
  make_unwritable(folder, true);
  const std::string seen = as_unprivileged_reader([&] {
    // Nothing can be created here, so this is a real unwritable folder for the reader.
    std::ofstream probe(folder / "probe");
    if (probe) return std::string("error: the folder is writable");
    return read_summary(path, run) + " decision=" + (reads_immutable(path) ? "1" : "0");
  });
  fs::permissions(folder, fs::perms::owner_all);
  EXPECT_EQ(seen, "1 3 immutable=1 decision=1");
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(mtime_ns(path), mtime);
  EXPECT_FALSE(side_files_exist(path));
}

TEST(StoreOpen, ReadOnlyOpenOfAFileItCannotWriteLeavesNothingBehind) {
  test::TempDir dir;
  const auto path = dir / "results.sqlite";
  const int64_t run = make_database(path);
  const std::string before = read_bytes(path);
  make_unwritable(path, false);
  const std::string seen = as_unprivileged_reader([&] {
    if (std::ofstream(path, std::ios::app)) return std::string("error: the file is writable");
    return read_summary(path, run);
  });
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(seen, "1 3 immutable=1");
  EXPECT_EQ(read_bytes(path), before);
  // A normal reader would have left a -shm and a -wal it cannot remove, owned by it, read-only
  // for everyone: the next trainer could not use them.
  EXPECT_FALSE(side_files_exist(path));
}

TEST(StoreOpen, ReadOnlyOpenSeesCommitsStillInTheLogOfAnOpenWriter) {
  test::TempDir dir;
  const auto folder = dir / "live";
  const auto path = folder / "results.sqlite";
  ResultsStore writer(path);  // stays open: its commits are in results.sqlite-wal
  const int64_t run = testing::make_run(writer, "live");
  writer.writer(run).append_points(
      testing::series("loss", 1, 5, [](int64_t s) { return 2.0 / s; }));
  ASSERT_TRUE(fs::exists(path.string() + "-wal"));
  make_unwritable(folder, true);
  const std::string seen = as_unprivileged_reader([&] { return read_summary(path, run); });
  fs::permissions(folder, fs::perms::owner_all);
  // immutable=1 would ignore the -wal and find no tables at all.
  EXPECT_EQ(seen, "1 5 immutable=0");
}

TEST(StoreOpen, ReadOnlyOpenOfAWritableFileSharesItWithWriters) {
  test::TempDir dir;
  const auto path = dir / "results.sqlite";
  const int64_t run = make_database(path);
  ResultsStore reader(path, OpenOptions{Database::Mode::kReadOnly});
  EXPECT_FALSE(reader.database().immutable());
  EXPECT_FALSE(reads_immutable(path));
  // It sees what a writer commits after it was opened.
  {
    ResultsStore writer(path);
    writer.writer(run).append_points(
        testing::series("loss", 4, 2, [](int64_t s) { return 1.0 / s; }));
  }
  EXPECT_EQ(reader.reader().points(run, "loss").size(), 5u);
}

TEST(StoreOpen, AMissingFileIsRefusedAndNotCreatedWhenItMustExist) {
  test::TempDir dir;
  const auto path = dir / "missing" / "results.sqlite";
  OpenOptions existing;
  existing.create = false;
  for (const OpenOptions& options : {existing, OpenOptions{Database::Mode::kReadOnly}}) {
    try {
      ResultsStore store(path, options);
      FAIL() << "a missing database was opened";
    } catch (const UserError& e) {
      EXPECT_EQ(e.message(), "The results database " + path.string() + " does not exist.");
      EXPECT_THAT(e.hint(), HasSubstr("--db"));
      EXPECT_EQ(e.code(), kExitBadInput);
    }
    EXPECT_FALSE(fs::exists(path.parent_path()));
  }
  // An existing one opens for writing.
  make_database(path);
  ResultsStore store(path, existing);
  EXPECT_EQ(store.reader().list_runs().size(), 1u);
}

TEST(StoreBusy, TheTimeoutMessageComesOnlyAfterTheTimeout) {
  test::TempDir dir;
  const auto path = dir / "locked.sqlite";
  const int64_t run = make_database(path);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  OpenOptions options;
  options.busy_timeout = std::chrono::milliseconds(300);
  ResultsStore store(path, options);
  const auto start = std::chrono::steady_clock::now();
  try {
    store.metadata().add_tag(run, "x");
    FAIL() << "wrote while another connection held the write lock";
  } catch (const BusyError& e) {
    EXPECT_GE(std::chrono::steady_clock::now() - start, options.busy_timeout);
    EXPECT_EQ(e.message(), "The results database " + path.string() +
                               " stayed locked by another process for longer than the busy "
                               "timeout (300 ms).");
  }
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  store.metadata().add_tag(run, "x");  // free again
  EXPECT_EQ(store.reader().tags(run), std::vector<std::string>{"x"});
}

TEST(StoreBusy, ABusyAnswerWithoutWaitingDoesNotClaimTheTimeout) {
  test::TempDir dir;
  const auto path = dir / "snapshot.sqlite";
  make_database(path);
  ResultsStore store(path);
  Database& db = store.database();
  // A read transaction whose snapshot another connection then outdates cannot become a write
  // transaction: SQLite answers SQLITE_BUSY_SNAPSHOT at once, without the busy handler.
  db.exec("BEGIN");
  EXPECT_EQ(db.query_int64("SELECT count(*) FROM runs"), 1);
  ASSERT_EQ(exec_raw(path, "INSERT INTO experiments (name, created_at) VALUES ('other', 0)"),
            SQLITE_OK);
  try {
    db.exec("INSERT INTO experiments (name, created_at) VALUES ('mine', 0)");
    FAIL() << "wrote on an outdated snapshot";
  } catch (const BusyError& e) {
    EXPECT_EQ(e.message(),
              "The results database " + path.string() + " is locked by another process.");
    EXPECT_THAT(e.message(), Not(HasSubstr("timeout")));
  }
  db.exec("ROLLBACK");
}

}  // namespace
}  // namespace mmlab::store
