// SPDX-License-Identifier: GPL-3.0-or-later
// Snapshot + merge: a remote run's rows come home incrementally with import's rules.
#include <gtest/gtest.h>

#include <fstream>

#include "core/remote/run_sync.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "test_support.h"

namespace mmlab::remote {
namespace {

namespace fs = std::filesystem;
using store::MetricPoint;
using store::ResultsStore;

std::vector<MetricPoint> steps(int64_t first, int64_t last, double offset = 0) {
  std::vector<MetricPoint> out;
  for (int64_t s = first; s <= last; ++s) {
    out.push_back({"loss", s, s * 64, 0.1 * double(s), 5.0 - 0.01 * double(s) + offset});
    out.push_back({"lr", s, s * 64, 0.1 * double(s), 1e-3});
  }
  return out;
}

// (metric, step, value) of every point of the run with this uuid.
std::vector<std::tuple<std::string, int64_t, double>> points(ResultsStore& st,
                                                             const std::string& uuid) {
  std::vector<std::tuple<std::string, int64_t, double>> out;
  st.reader().for_each_point(st.reader().find_run_by_uuid(uuid)->id,
                             [&](const std::string& m, const store::PointRow& p) {
                               out.emplace_back(m, p.step, p.value);
                             });
  return out;
}

class RunSync : public ::testing::Test {
 protected:
  void SetUp() override {
    remote_ = std::make_unique<ResultsStore>(dir_ / "remote.sqlite");
    // Another run first, so the ids of the two databases differ.
    store::NewRun other;
    other.experiment_id = remote_->ensure_experiment("other");
    other.name = "x";
    remote_->create_run(other);
    store::NewRun run;
    run.experiment_id = remote_->ensure_experiment("paper", R"({"name":"paper"})");
    run.name = "mamba";
    run.family = "mamba";
    run.total_steps = 100;
    run_ = remote_->create_run(run);
    uuid_ = remote_->reader().get_run(run_).uuid;
    store::RunStart start;
    start.pid = 4242;
    start.host = "gpu1";
    remote_->writer(run_).mark_started(start);
    remote_->writer(run_).append_points({{"unigram_entropy", 0, 0, 0, 3.16}});
  }

  SyncResult sync(int64_t after, bool full = false) {
    const fs::path snap = dir_ / ("snap-" + std::to_string(++snaps_) + ".sqlite");
    write_run_snapshot(remote_->path(), run_, snap, after);
    return merge_run_snapshot(local_, snap, full);
  }

  test::TempDir dir_;
  std::unique_ptr<ResultsStore> remote_;
  ResultsStore local_{dir_ / "local.sqlite"};
  int64_t run_ = 0;
  std::string uuid_;
  int snaps_ = 0;
};

TEST_F(RunSync, NewPointsOnlyAndEveryPointOnce) {
  remote_->writer(run_).append_points(steps(1, 10));
  const SyncResult first = sync(-1);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.uuid, uuid_);
  EXPECT_EQ(first.points, 21);  // step 0 included
  EXPECT_EQ(first.last_step, 10);
  EXPECT_EQ(local_.reader().get_run(first.run_id).host, "gpu1");
  local_.metadata().add_tag(first.run_id, "mine");

  remote_->writer(run_).append_points(steps(11, 25));
  remote_->writer(run_).heartbeat(25, 25 * 64);
  // One step back, as sync_from_host asks: step 10 comes again and replaces itself.
  const SyncResult second = sync(last_synced_step(local_, uuid_) - 1);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.run_id, first.run_id);
  EXPECT_EQ(second.points, 2 * 16);  // steps 10..25, two metrics
  EXPECT_EQ(second.last_step, 25);
  EXPECT_EQ(points(local_, uuid_), points(*remote_, uuid_));
  EXPECT_EQ(local_.reader().get_run(first.run_id).step, 25);
  // The summaries are the remote ones, the tags stay local.
  ASSERT_EQ(local_.reader().summaries(first.run_id).size(),
            remote_->reader().summaries(run_).size());
  EXPECT_EQ(local_.reader().tags(first.run_id), std::vector<std::string>{"mine"});

  remote_->writer(run_).set_status(store::RunStatus::kFinished);
  const SyncResult third = sync(last_synced_step(local_, uuid_) - 1);
  EXPECT_EQ(third.points, 2);  // only step 25 again
  EXPECT_EQ(local_.reader().get_run(first.run_id).status, store::RunStatus::kFinished);
  EXPECT_EQ(local_.reader().list_runs().size(), 1u);
}

TEST_F(RunSync, FullSyncAfterAResumeDropsTheDiscardedTail) {
  remote_->writer(run_).append_points(steps(1, 30));
  sync(-1);
  // A resume from the checkpoint at step 20 discards 21..30 and trains them again differently.
  remote_->writer(run_).truncate_after(20);
  remote_->writer(run_).append_points(steps(21, 24, 0.5));
  const SyncResult full = sync(-1, true);
  EXPECT_EQ(full.last_step, 24);
  EXPECT_EQ(points(local_, uuid_), points(*remote_, uuid_));
}

TEST_F(RunSync, SnapshotRefusesAnExistingFileAndAnUnknownRun) {
  std::ofstream(dir_ / "taken.sqlite") << "x";
  EXPECT_THROW(write_run_snapshot(remote_->path(), run_, dir_ / "taken.sqlite", -1), UserError);
  EXPECT_THROW(write_run_snapshot(remote_->path(), 999, dir_ / "new.sqlite", -1), UserError);
  EXPECT_FALSE(fs::exists(dir_ / "new.sqlite"));
}

TEST(LaunchBook, SavesMergeWithWhatOthersSavedMeanwhile) {
  test::TempDir dir;
  const fs::path db = dir / "results.sqlite";
  LaunchBook first = LaunchBook::load(db);
  LaunchBook second = LaunchBook::load(db);  // another process, same (empty) book
  Launch a;
  a.tag = "a";
  a.host = "gpu1";
  first.launches().push_back(a);
  first.save();
  Launch b;
  b.tag = "b";
  b.host = "gpu2";
  second.launches().push_back(b);
  second.save();  // must not drop "a"
  first.launches()[0].uuid = "u1";
  first.save();  // must not drop "b"
  LaunchBook back = LaunchBook::load(db);
  ASSERT_EQ(back.launches().size(), 2u);
  EXPECT_EQ(back.find("a")->uuid, "u1");
  EXPECT_EQ(back.find("b")->host, "gpu2");
  EXPECT_EQ(back.find("u1")->tag, "a");
}

// Two followers of two launches (a Slurm host's jobs run side by side), each with the whole book
// loaded: each one's save writes only what it changed, never its stale copy of the other's entry.
TEST(LaunchBook, ASaveKeepsWhatAnotherProcessChangedInAnEntryThisOneOnlyRead) {
  test::TempDir dir;
  const fs::path db = dir / "results.sqlite";
  {
    LaunchBook book = LaunchBook::load(db);
    Launch a, b;
    a.tag = "a";
    b.tag = "b";
    book.launches() = {a, b};
    book.save();
  }
  LaunchBook follows_a = LaunchBook::load(db);
  LaunchBook follows_b = LaunchBook::load(db);
  follows_a.find("a")->uuid = "ua";
  follows_a.save();
  follows_b.find("b")->uuid = "ub";
  follows_b.save();  // its "a" is the one it loaded, uuid-less: not written back
  follows_a.find("a")->ended = true;
  follows_a.save();  // nor is its uuid-less "b"
  LaunchBook back = LaunchBook::load(db);
  EXPECT_EQ(back.find("a")->uuid, "ua");
  EXPECT_TRUE(back.find("a")->ended);
  EXPECT_EQ(back.find("b")->uuid, "ub");
}

}  // namespace
}  // namespace mmlab::remote
