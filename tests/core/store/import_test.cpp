// SPDX-License-Identifier: GPL-3.0-or-later
// Copying runs between results databases.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::make_run;
using testing::query_int;

TEST(StoreImport, CopiesRunsRemappingIdsAndSkipsDuplicates) {
  test::TempDir dir;
  const auto src_path = dir / "gpu-server.sqlite";
  const auto dst_path = dir / "laptop.sqlite";

  int64_t src_a = 0, src_b = 0;
  std::string uuid_a;
  {
    ResultsStore src(src_path);
    // Metric names created in the opposite order from the destination: their ids differ.
    src_a = make_run(src, "moe-mamba", "moe-mamba", "paper");
    src_b = make_run(src, "mamba", "mamba", "paper");
    src.writer(src_a).append_points({{"val_loss", 10, 100, 1.0, 3.5},
                                     {"loss_smooth", 10, 100, 1.0, 3.25},
                                     {"loss_smooth", 20, 200, 2.0, 3.0}});
    src.writer(src_b).append_points({{"loss_smooth", 10, 100, 1.5, 3.75}});
    src.writer(src_a).set_status(RunStatus::kFinished);
    src.metadata().add_tag(src_a, "paper");
    src.metadata().set_note(src_a, "the good one");
    src.writer(src_a).add_event("eval", R"({"val_loss": 3.5})", 10, 1.0);
    src.writer(src_a).add_checkpoint(20, "/ckpt/a-20.pt", 123, "beef");
    src.writer(src_a).set_ops_used(R"({"selective_scan":"cuda"})");
    uuid_a = src.reader().get_run(src_a).uuid;
  }

  ResultsStore dst(dst_path);
  const int64_t local = make_run(dst, "local", "transformer", "paper");
  dst.writer(local).append_points({{"loss_smooth", 1, 1, 1, 9.0}, {"val_loss", 1, 1, 1, 9.5}});
  const int64_t local2 = make_run(dst, "local2", "transformer", "other");
  (void)local2;

  ImportResult first = dst.import_runs_from(src_path);
  EXPECT_EQ(first.imported, 2);
  EXPECT_EQ(first.skipped, 0);

  std::optional<RunRow> a = dst.reader().find_run_by_uuid(uuid_a);
  ASSERT_TRUE(a.has_value());
  EXPECT_NE(a->id, src_a);  // remapped: ids 1 and 2 were taken here
  EXPECT_EQ(a->name, "moe-mamba");
  EXPECT_EQ(a->experiment, "paper");
  EXPECT_EQ(a->experiment_id, dst.reader().find_experiment("paper")->id);  // merged by name
  EXPECT_EQ(a->status, RunStatus::kFinished);
  EXPECT_DOUBLE_EQ(*a->final_loss_smooth, 3.0);
  EXPECT_DOUBLE_EQ(*a->best_val_loss, 3.5);
  EXPECT_THAT(a->tags, ElementsAre("paper"));
  EXPECT_EQ(dst.reader().note(a->id), "the good one");
  ASSERT_EQ(dst.reader().events(a->id).size(), 1u);
  EXPECT_EQ(dst.reader().events(a->id)[0].kind, "eval");
  ASSERT_EQ(dst.reader().list_checkpoints(a->id).size(), 1u);
  EXPECT_EQ(dst.reader().list_checkpoints(a->id)[0].hash, "beef");
  EXPECT_EQ(a->ops_used, R"({"selective_scan":"cuda"})");

  std::vector<PointRow> loss = dst.reader().points(a->id, "loss_smooth");
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_EQ(loss[1].step, 20);
  EXPECT_EQ(loss[1].tokens, 200);
  EXPECT_DOUBLE_EQ(loss[1].value, 3.0);
  std::vector<PointRow> val = dst.reader().points(a->id, "val_loss");
  ASSERT_EQ(val.size(), 1u);
  EXPECT_DOUBLE_EQ(val[0].value, 3.5);

  // The local run is untouched.
  EXPECT_DOUBLE_EQ(*dst.reader().get_run(local).final_loss_smooth, 9.0);
  EXPECT_EQ(dst.reader().list_runs().size(), 4u);

  // Importing again copies nothing.
  ImportResult second = dst.import_runs_from(src_path);
  EXPECT_EQ(second.imported, 0);
  EXPECT_EQ(second.skipped, 2);
  EXPECT_EQ(dst.reader().list_runs().size(), 4u);
  EXPECT_EQ(query_int(dst_path, "SELECT count(*) FROM metric_points"), 2 + 3 + 1);

  // Importing a database into itself copies nothing either.
  ImportResult self = dst.import_runs_from(dst_path);
  EXPECT_EQ(self.imported, 0);
  EXPECT_EQ(self.skipped, 4);

  EXPECT_EQ(dst.integrity_check(), "ok");
  EXPECT_EQ(query_int(dst_path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
  EXPECT_EQ(query_int(dst_path, testing::kOrphanPoints), 0);
  EXPECT_EQ(
      dst.database().query_int64("SELECT count(*) FROM pragma_database_list WHERE name = 'src'"),
      0);  // detached again
  // The source was opened read-only and is unchanged.
  EXPECT_EQ(query_int(src_path, "SELECT count(*) FROM runs"), 2);
}

TEST(StoreImport, RefusesSourcesThatAreNotResultsDatabases) {
  test::TempDir dir;
  ResultsStore dst(dir / "dst.sqlite");
  try {
    dst.import_runs_from(dir / "missing.sqlite");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("missing.sqlite does not exist"));
  }
  testing::exec_raw(dir / "foreign.sqlite", "CREATE TABLE runs (x);");
  EXPECT_THROW(dst.import_runs_from(dir / "foreign.sqlite"), UserError);
  EXPECT_TRUE(dst.reader().list_runs().empty());
}

TEST(StoreImport, PathsWithUriSpecialCharacters) {
  test::TempDir dir;
  const auto odd = dir / "results #1 ?100%.sqlite";
  {
    ResultsStore src(odd);
    make_run(src, "r");
  }
  ResultsStore dst(dir / "dst.sqlite");
  EXPECT_EQ(dst.import_runs_from(odd).imported, 1);
}

}  // namespace
}  // namespace mmlab::store
