// SPDX-License-Identifier: GPL-3.0-or-later
// Opening, creating and migrating results databases, and refusing files that are not ours.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/store/schema.h"
#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

using testing::exec_raw;
using ::testing::HasSubstr;
using testing::make_run;
using testing::query_int;

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(StoreSchema, CreatesTablesPragmasAndVersion) {
  test::TempDir dir;
  const auto path = dir / "nested" / "deeper" / "results.sqlite";
  {
    ResultsStore store(path);
    EXPECT_EQ(store.database().query_text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(store.database().query_int64("PRAGMA foreign_keys"), 1);
    EXPECT_EQ(store.database().query_int64("PRAGMA synchronous"), 1);  // NORMAL
    EXPECT_EQ(store.database().busy_timeout(), std::chrono::milliseconds(10000));
    EXPECT_EQ(store.integrity_check(), "ok");
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(ResultsStore::schema_version(), 3);
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), 3);
  EXPECT_EQ(query_int(path, "PRAGMA application_id"), kApplicationId);
  for (const char* table : {"experiments", "runs", "metric_names", "metric_points", "run_summaries",
                            "events", "checkpoints", "tags", "notes"}) {
    EXPECT_EQ(query_int(path, std::string("SELECT count(*) FROM sqlite_schema WHERE type = "
                                          "'table' AND name = '") +
                                  table + "'"),
              1)
        << table;
  }
  // metric_points is clustered by its key (no rowid).
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM pragma_table_info('metric_points') "
                      "WHERE pk > 0"),
            3);
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM sqlite_schema WHERE name = 'metric_points' AND "
                      "sql LIKE '%WITHOUT ROWID%'"),
            1);
  // Opening again is a no-op.
  ResultsStore again(path);
  EXPECT_EQ(again.database().query_int64("PRAGMA user_version"), 3);
}

TEST(StoreSchema, StatusCheckConstraintRejectsUnknownWords) {
  test::TempDir dir;
  ResultsStore store(dir / "r.sqlite");
  int64_t run = make_run(store, "a");
  EXPECT_THROW(
      store.database().exec("UPDATE runs SET status = 'lost' WHERE id = " + std::to_string(run)),
      StoreError);
  EXPECT_EQ(store.reader().get_run(run).status, RunStatus::kQueued);
}

TEST(StoreSchema, MigratesAnEmptyVersion0File) {
  test::TempDir dir;
  const auto path = dir / "v0.sqlite";
  // A database file with a header but no tables and user_version 0.
  ASSERT_EQ(exec_raw(path, "CREATE TABLE t (a); DROP TABLE t;"), SQLITE_OK);
  ASSERT_EQ(query_int(path, "PRAGMA user_version"), 0);
  ResultsStore store(path);
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), 3);
  int64_t run = make_run(store, "after-migration");
  EXPECT_EQ(store.reader().get_run(run).uuid.size(), 32u);
}

TEST(StoreSchema, MigratesVersion1KeepingRowsAndGivingThemUuids) {
  test::TempDir dir;
  const auto path = dir / "v1.sqlite";
  // A version-1 file as an older mmlab wrote it: migration 0 only, with rows.
  ASSERT_EQ(exec_raw(path, schema_migrations()[0] + R"sql(
PRAGMA user_version = 1;
INSERT INTO experiments (id, name, created_at) VALUES (5, 'old-exp', 1.0);
INSERT INTO runs (id, experiment_id, name, status, family, created_at)
  VALUES (11, 5, 'r1', 'finished', 'mamba', 2.0), (12, 5, 'r2', 'failed', 'transformer', 3.0);
INSERT INTO metric_names (id, name) VALUES (1, 'loss');
INSERT INTO metric_points VALUES (11, 1, 1, 10, 0.1, 4.5), (11, 1, 2, 20, 0.2, 4.25);
INSERT INTO run_summaries VALUES (11, 1, 4.25, 2, 4.25, 2, 2);
)sql"),
            SQLITE_OK);
  ResultsStore store(path);
  EXPECT_EQ(store.database().query_int64("PRAGMA user_version"), 3);
  std::vector<RunRow> runs = store.reader().list_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, 11);
  EXPECT_EQ(runs[0].experiment, "old-exp");
  EXPECT_EQ(runs[0].status, RunStatus::kFinished);
  EXPECT_EQ(runs[1].status, RunStatus::kFailed);
  EXPECT_EQ(runs[0].uuid.size(), 32u);
  EXPECT_EQ(runs[0].uuid.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(runs[0].uuid, runs[1].uuid);
  std::vector<PointRow> pts = store.reader().points(11, "loss");
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[1].step, 2);
  EXPECT_DOUBLE_EQ(pts[1].value, 4.25);
  EXPECT_EQ(store.integrity_check(), "ok");
}

TEST(StoreSchema, MigratesVersion2GivingRunsNoOpsUsedYet) {
  test::TempDir dir;
  const auto path = dir / "v2.sqlite";
  ASSERT_EQ(exec_raw(path, schema_migrations()[0] + schema_migrations()[1] + R"sql(
PRAGMA user_version = 2;
INSERT INTO experiments (id, name, created_at) VALUES (5, 'old-exp', 1.0);
INSERT INTO runs (id, experiment_id, name, status, family, created_at, uuid)
  VALUES (11, 5, 'r1', 'finished', 'mamba', 2.0, 'aaaa');
)sql"),
            SQLITE_OK);
  ResultsStore store(path);
  EXPECT_EQ(store.database().query_int64("PRAGMA user_version"), 3);
  RunRow old = store.reader().get_run(11);
  EXPECT_EQ(old.name, "r1");
  EXPECT_EQ(old.uuid, "aaaa");
  EXPECT_EQ(old.ops_used, "");
  store.writer(11).set_ops_used(R"({"selective_scan":"reference"})");
  EXPECT_EQ(store.reader().get_run(11).ops_used, R"({"selective_scan":"reference"})");
  EXPECT_THROW(store.writer(99).set_ops_used("{}"), UserError);
}

TEST(StoreSchema, RefusesANewerSchema) {
  test::TempDir dir;
  const auto path = dir / "newer.sqlite";
  { ResultsStore store(path); }
  ASSERT_EQ(exec_raw(path, "PRAGMA user_version = 7"), SQLITE_OK);
  try {
    ResultsStore store(path);
    FAIL() << "a newer schema was opened";
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), "The results database " + path.string() +
                               " was written by a newer mmlab (schema 7, this build knows 3).");
    EXPECT_EQ(e.hint(), "Upgrade mmlab or open another database.");
    EXPECT_EQ(e.code(), kExitBadInput);
  }
  // Read-only readers refuse it too, and nothing was changed.
  EXPECT_THROW(ResultsStore(path, OpenOptions{Database::Mode::kReadOnly}), UserError);
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), 7);
}

TEST(StoreSchema, RefusesAFileThatIsNotADatabase) {
  test::TempDir dir;
  const auto path = dir / "notes.txt";
  const std::string text(4096, 'x');
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  try {
    ResultsStore store(path);
    FAIL() << "a text file was opened";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr(path.string()));
    EXPECT_THAT(e.message(), HasSubstr("is not an SQLite database"));
    EXPECT_THAT(e.hint(), HasSubstr("Choose another file"));
  }
  EXPECT_EQ(read_bytes(path), text);  // untouched
}

TEST(StoreSchema, RefusesAnotherProgramsDatabase) {
  test::TempDir dir;
  const auto path = dir / "other.sqlite";
  ASSERT_EQ(exec_raw(path, "CREATE TABLE runs (x); INSERT INTO runs VALUES (1);"), SQLITE_OK);
  try {
    ResultsStore store(path);
    FAIL() << "a foreign database was opened";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr(path.string()));
    EXPECT_THAT(e.message(), HasSubstr("not an mmlab results database"));
  }
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM runs"), 1);
}

TEST(StoreSchema, RefusesAnUnwritableDirectory) {
  test::TempDir dir;
  // A regular file where a directory should be: fails for root as well.
  { std::ofstream(dir / "file") << "x"; }
  const auto blocked = dir / "file" / "sub";
  try {
    ResultsStore store(blocked / "results.sqlite");
    FAIL() << "opened under a file";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr(blocked.string()));
    EXPECT_THAT(e.hint(), HasSubstr("--db"));
  }
  if (::geteuid() != 0) {  // root ignores directory permissions
    const auto locked = dir / "locked";
    std::filesystem::create_directory(locked);
    std::filesystem::permissions(
        locked, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    try {
      ResultsStore store(locked / "results.sqlite");
      FAIL() << "opened in a read-only directory";
    } catch (const UserError& e) {
      EXPECT_THAT(e.message(), HasSubstr("The directory " + locked.string() + " is not writable"));
    }
    std::filesystem::permissions(locked, std::filesystem::perms::owner_all);
  }
}

TEST(StoreSchema, ReadOnlyModeReadsButNeverWrites) {
  test::TempDir dir;
  const auto path = dir / "r.sqlite";
  EXPECT_THROW(ResultsStore(path, OpenOptions{Database::Mode::kReadOnly}), UserError);
  EXPECT_FALSE(std::filesystem::exists(path));  // not created
  int64_t run = 0;
  {
    ResultsStore writer(path);
    run = make_run(writer, "r");
    writer.writer(run).append_points(
        testing::series("loss", 1, 3, [](int64_t s) { return 1.0 / s; }));
  }
  ResultsStore reader(path, OpenOptions{Database::Mode::kReadOnly});
  EXPECT_EQ(reader.reader().list_runs().size(), 1u);
  EXPECT_EQ(reader.reader().points(run, "loss").size(), 3u);
  try {
    reader.metadata().add_tag(run, "x");
    FAIL() << "a read-only store wrote";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr(path.string()));
    EXPECT_THAT(e.message(), HasSubstr("cannot be written"));
  }
}

TEST(StoreSchema, ReadOnlyModeRefusesAnOlderSchema) {
  test::TempDir dir;
  const auto path = dir / "v1.sqlite";
  ASSERT_EQ(exec_raw(path, schema_migrations()[0] + "PRAGMA user_version = 1;"), SQLITE_OK);
  try {
    ResultsStore reader(path, OpenOptions{Database::Mode::kReadOnly});
    FAIL() << "an old schema was opened read-only";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("older schema (1)"));
  }
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), 1);
}

TEST(StoreSchema, StatusWordsRoundTrip) {
  for (RunStatus s :
       {RunStatus::kQueued, RunStatus::kRunning, RunStatus::kStopped, RunStatus::kFinished,
        RunStatus::kFailed, RunStatus::kDiverged, RunStatus::kLost}) {
    EXPECT_EQ(parse_run_status(to_string(s)), s);
  }
  EXPECT_EQ(to_string(RunStatus::kDiverged), "diverged");
  EXPECT_THROW(parse_run_status("done"), UserError);
  EXPECT_TRUE(is_terminal(RunStatus::kFinished));
  EXPECT_FALSE(is_terminal(RunStatus::kRunning));
}

}  // namespace
}  // namespace mmlab::store
