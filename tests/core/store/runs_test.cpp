// SPDX-License-Identifier: GPL-3.0-or-later
// Runs, metric points and summaries, the run browser's query, user metadata, deletion and
// lost-run detection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include "core/store/store.h"
#include "store_test_util.h"
#include "test_support.h"

namespace mmlab::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::make_run;
using testing::query_int;
using testing::series;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

RunFilter text(const std::string& t) {
  RunFilter f;
  f.text = t;
  return f;
}
RunFilter family(const std::string& fam) {
  RunFilter f;
  f.family = fam;
  return f;
}
RunFilter status(RunStatus st) {
  RunFilter f;
  f.status = st;
  return f;
}
RunFilter tag(const std::string& t) {
  RunFilter f;
  f.tag = t;
  return f;
}
RunFilter experiment(int64_t id) {
  RunFilter f;
  f.experiment_id = id;
  return f;
}

class StoreRuns : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::filesystem::path path_ = dir_ / "results.sqlite";
  ResultsStore store_{path_};
};

TEST_F(StoreRuns, CreateStartHeartbeatAndFinishARun) {
  NewRun spec;
  spec.experiment_id = store_.ensure_experiment("quick-compare", R"({"runs": 4})");
  EXPECT_EQ(store_.ensure_experiment("quick-compare"), spec.experiment_id);  // ensured, not new
  spec.name = "moe-mamba-s1";
  spec.family = "moe-mamba";
  spec.config_json = R"({"d_model": 64, "n_expert": 8})";
  spec.seed = 1234;
  spec.total_steps = 500;
  spec.git_rev = "abc123";
  const int64_t id = store_.create_run(spec);

  RunRow row = store_.reader().get_run(id);
  EXPECT_EQ(row.status, RunStatus::kQueued);
  EXPECT_EQ(row.experiment, "quick-compare");
  EXPECT_EQ(row.config_json, spec.config_json);
  EXPECT_EQ(row.seed, 1234);
  EXPECT_EQ(row.total_steps, 500);
  EXPECT_EQ(row.git_rev, "abc123");
  EXPECT_FALSE(row.started_at.has_value());
  EXPECT_EQ(row.uuid.size(), 32u);

  RunStart start;
  start.pid = ::getpid();
  start.host = current_host();
  start.device = "cpu";
  start.torch_version = "1.13.0";
  start.params_total = 1000;
  start.params_active = 600;
  start.params_nonembed = 400;
  store_.writer(id).mark_started(start);
  store_.writer(id).heartbeat(42, 42 * 2048);
  row = store_.reader().get_run(id);
  EXPECT_EQ(row.status, RunStatus::kRunning);
  EXPECT_EQ(row.effective_status, RunStatus::kRunning);
  EXPECT_EQ(row.pid, ::getpid());
  EXPECT_EQ(row.params_active, 600);
  EXPECT_EQ(row.step, 42);
  EXPECT_EQ(row.tokens, 42 * 2048);
  ASSERT_TRUE(row.started_at && row.heartbeat_at);
  EXPECT_GE(*row.heartbeat_at, *row.started_at);

  EXPECT_FALSE(row.duration_s);  // nothing trained yet
  // The duration is the training time: the wall of the last logged point (12.25 s), not the
  // time since the start (which would count stops, queueing and data preparation).
  store_.writer(id).append_points(
      {{"loss_smooth", 10, 20480, 3.5, 2.0}, {"loss_smooth", 42, 86016, 12.25, 1.5}});
  store_.writer(id).set_status(RunStatus::kDiverged, "loss became NaN at step 43");
  row = store_.reader().get_run(id);
  EXPECT_EQ(row.status, RunStatus::kDiverged);
  EXPECT_EQ(row.error_text, "loss became NaN at step 43");
  ASSERT_TRUE(row.ended_at && row.duration_s);
  EXPECT_DOUBLE_EQ(*row.duration_s, 12.25);

  // Resuming clears the end and the error but keeps the first start time.
  const double first_start = *row.started_at;
  store_.writer(id).mark_started(start);
  row = store_.reader().get_run(id);
  EXPECT_EQ(row.status, RunStatus::kRunning);
  EXPECT_FALSE(row.ended_at.has_value());
  EXPECT_EQ(row.error_text, "");
  EXPECT_DOUBLE_EQ(*row.started_at, first_start);
}

TEST_F(StoreRuns, UnknownRunsAndBadInputAreUserErrors) {
  try {
    store_.reader().get_run(99);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), "No run 99 in the results database " + path_.string() + ".");
  }
  EXPECT_THROW(store_.writer(99).set_status(RunStatus::kFinished), UserError);
  EXPECT_THROW(store_.writer(99).heartbeat(1, 1), UserError);
  EXPECT_THROW(store_.writer(99).append_points(series("loss", 1, 2, [](int64_t) { return 1.0; })),
               UserError);
  EXPECT_THROW(store_.metadata().delete_run(99), UserError);
  EXPECT_THROW(store_.metadata().add_tag(99, "x"), UserError);
  EXPECT_FALSE(store_.reader().find_run(99).has_value());

  NewRun bad;
  bad.experiment_id = 12345;
  EXPECT_THROW(store_.create_run(bad), UserError);
  bad.experiment_id = store_.ensure_experiment("e");
  bad.config_json = "{not json";
  EXPECT_THROW(store_.create_run(bad), UserError);
  EXPECT_THROW(store_.ensure_experiment(""), UserError);
  EXPECT_TRUE(store_.reader().list_runs().empty());
}

TEST_F(StoreRuns, PointsRoundTripAndUpsert) {
  const int64_t run = make_run(store_, "r");
  std::vector<MetricPoint> batch = {
      {"loss", 1, 100, 0.25, 5.5},
      {"lr", 1, 100, 0.25, 1e-4},
      {"loss", 2, 200, 0.5, 5.25},
      {"lr", 2, 200, 0.5, 2e-4},
      {"loss", 3, 300, 0.75, std::numeric_limits<double>::infinity()},
      {"loss", 4, 400, 1.0, kNaN},
  };
  store_.writer(run).append_points(batch);
  std::vector<PointRow> loss = store_.reader().points(run, "loss");
  ASSERT_EQ(loss.size(), 4u);
  EXPECT_EQ(loss[0].step, 1);
  EXPECT_EQ(loss[0].tokens, 100);
  EXPECT_DOUBLE_EQ(loss[0].wall, 0.25);
  EXPECT_DOUBLE_EQ(loss[0].value, 5.5);
  EXPECT_DOUBLE_EQ(loss[1].value, 5.25);
  EXPECT_TRUE(std::isinf(loss[2].value));
  EXPECT_TRUE(std::isnan(loss[3].value));
  EXPECT_EQ(store_.reader().points(run, "lr").size(), 2u);
  EXPECT_TRUE(store_.reader().points(run, "no_such_metric").empty());
  EXPECT_THAT(store_.reader().metric_names(run), ElementsAre("loss", "lr"));

  // A resumed run repeats steps 2..3: the new values replace the old ones, nothing duplicates.
  store_.writer(run).append_points({{"loss", 2, 201, 9.0, 4.0}, {"loss", 3, 301, 9.5, 3.0}});
  loss = store_.reader().points(run, "loss");
  ASSERT_EQ(loss.size(), 4u);
  EXPECT_EQ(loss[1].tokens, 201);
  EXPECT_DOUBLE_EQ(loss[1].wall, 9.0);
  EXPECT_DOUBLE_EQ(loss[1].value, 4.0);
  EXPECT_DOUBLE_EQ(loss[2].value, 3.0);

  // Incremental polling.
  std::vector<PointRow> tail = store_.reader().points_since(run, "loss", 2);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0].step, 3);
  EXPECT_TRUE(store_.reader().points_since(run, "loss", 4).empty());

  // Export order: metric name, then step.
  std::vector<std::pair<std::string, int64_t>> seen;
  store_.reader().for_each_point(
      run, [&](const std::string& m, const PointRow& p) { seen.emplace_back(m, p.step); });
  EXPECT_THAT(seen, ElementsAre(std::pair<std::string, int64_t>{"loss", 1},
                                std::pair<std::string, int64_t>{"loss", 2},
                                std::pair<std::string, int64_t>{"loss", 3},
                                std::pair<std::string, int64_t>{"loss", 4},
                                std::pair<std::string, int64_t>{"lr", 1},
                                std::pair<std::string, int64_t>{"lr", 2}));
}

SummaryRow summary_of(ResultsStore& store, int64_t run, const std::string& metric) {
  for (const SummaryRow& s : store.reader().summaries(run)) {
    if (s.metric == metric) return s;
  }
  ADD_FAILURE() << "no summary for " << metric;
  return {};
}

TEST_F(StoreRuns, SummariesMatchValuesComputedByHand) {
  const int64_t run = make_run(store_, "r");
  // Values by step: 1:3.0 2:2.5 3:2.7 4:2.5 5:2.6 — min 2.5 first reached at step 2.
  store_.writer(run).append_points({{"loss_smooth", 1, 10, 1, 3.0},
                                    {"loss_smooth", 2, 20, 2, 2.5},
                                    {"loss_smooth", 3, 30, 3, 2.7}});
  store_.writer(run).append_points(
      {{"loss_smooth", 4, 40, 4, 2.5}, {"loss_smooth", 5, 50, 5, 2.6}});
  SummaryRow s = summary_of(store_, run, "loss_smooth");
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.last_step, 5);
  EXPECT_DOUBLE_EQ(*s.last, 2.6);
  EXPECT_DOUBLE_EQ(*s.min, 2.5);
  EXPECT_EQ(*s.step_at_min, 2);

  // A NaN is counted and becomes the last value, but never the min.
  store_.writer(run).append_points({{"loss_smooth", 6, 60, 6, kNaN}});
  s = summary_of(store_, run, "loss_smooth");
  EXPECT_EQ(s.count, 6);
  EXPECT_EQ(s.last_step, 6);
  EXPECT_FALSE(s.last.has_value());
  EXPECT_DOUBLE_EQ(*s.min, 2.5);

  // Overwriting steps 2 and 4 (both held the min) and 6 by a resumed run: min is now 2.6 at 5,
  // the last value 2.0 at 6, still 6 points.
  store_.writer(run).append_points({{"loss_smooth", 2, 20, 2, 2.8},
                                    {"loss_smooth", 4, 40, 4, 2.9},
                                    {"loss_smooth", 6, 60, 6, 2.65}});
  s = summary_of(store_, run, "loss_smooth");
  EXPECT_EQ(s.count, 6);
  EXPECT_EQ(s.last_step, 6);
  EXPECT_DOUBLE_EQ(*s.last, 2.65);
  EXPECT_DOUBLE_EQ(*s.min, 2.6);
  EXPECT_EQ(*s.step_at_min, 5);

  // The stored summary equals one recomputed from the points with plain SQL.
  EXPECT_EQ(
      query_int(path_, "SELECT count(*) FROM metric_points WHERE run_id = " + std::to_string(run)),
      6);
  EXPECT_EQ(query_int(path_, "SELECT step FROM metric_points WHERE run_id = " +
                                 std::to_string(run) + " ORDER BY value LIMIT 1"),
            5);

  // Resume from a checkpoint at step 3: later points go, the summary follows.
  store_.writer(run).truncate_after(3);
  s = summary_of(store_, run, "loss_smooth");
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.last_step, 3);
  EXPECT_DOUBLE_EQ(*s.last, 2.7);
  EXPECT_DOUBLE_EQ(*s.min, 2.7);
  EXPECT_EQ(*s.step_at_min, 3);
  store_.writer(run).append_points({{"loss_smooth", 4, 40, 4, 2.4}});
  s = summary_of(store_, run, "loss_smooth");
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(*s.min, 2.4);
  EXPECT_EQ(*s.step_at_min, 4);
}

TEST_F(StoreRuns, ListRunsCarriesSummariesAndFilters) {
  const int64_t a = make_run(store_, "mamba-small", "mamba", "scaling");
  const int64_t b = make_run(store_, "moe-mamba-small", "moe-mamba", "scaling");
  const int64_t c = make_run(store_, "transformer", "transformer", "baselines");
  const int64_t d = make_run(store_, "moe-mamba-big", "moe-mamba", "baselines");
  store_.writer(a).append_points({{"loss_smooth", 1, 1, 1, 4.0},
                                  {"loss_smooth", 2, 2, 2, 3.5},
                                  {"val_loss", 2, 2, 2, 3.9},
                                  {"val_loss", 4, 4, 4, 3.6},
                                  {"val_loss", 6, 6, 6, 3.7},
                                  {"tokens_per_s", 1, 1, 1, 1000},
                                  {"tokens_per_s", 2, 2, 2, 1200}});
  store_.writer(b).set_status(RunStatus::kFinished);
  store_.writer(c).set_status(RunStatus::kFailed, "out of memory");
  store_.metadata().add_tag(b, "paper");
  store_.metadata().add_tag(d, "  paper ");  // trimmed
  store_.metadata().add_tag(d, "big");

  std::vector<RunRow> all = store_.reader().list_runs();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_DOUBLE_EQ(*all[0].final_loss_smooth, 3.5);
  EXPECT_DOUBLE_EQ(*all[0].best_val_loss, 3.6);
  EXPECT_EQ(*all[0].best_val_step, 4);
  EXPECT_DOUBLE_EQ(*all[0].tokens_per_s, 1200);
  EXPECT_FALSE(all[1].final_loss_smooth.has_value());
  EXPECT_THAT(all[3].tags, ElementsAre("big", "paper"));
  EXPECT_EQ(all[2].error_text, "out of memory");

  auto ids = [&](RunFilter f) {
    std::vector<int64_t> out;
    for (const RunRow& r : store_.reader().list_runs(f)) out.push_back(r.id);
    return out;
  };
  EXPECT_THAT(ids(text("MOE")), ElementsAre(b, d));        // case-insensitive, name
  EXPECT_THAT(ids(text("baselines")), ElementsAre(c, d));  // experiment name
  EXPECT_THAT(ids(text("big")), ElementsAre(d));           // name and tag
  EXPECT_THAT(ids(text("100%")), ElementsAre());           // LIKE wildcards escaped
  EXPECT_THAT(ids(family("moe-mamba")), ElementsAre(b, d));
  EXPECT_THAT(ids(status(RunStatus::kQueued)), ElementsAre(a, d));
  EXPECT_THAT(ids(status(RunStatus::kFailed)), ElementsAre(c));
  EXPECT_THAT(ids(tag("paper")), ElementsAre(b, d));
  RunFilter all_three;
  all_three.family = "moe-mamba";
  all_three.status = RunStatus::kFinished;
  all_three.tag = "paper";
  EXPECT_THAT(ids(all_three), ElementsAre(b));
  EXPECT_THAT(ids(experiment(store_.reader().find_experiment("scaling")->id)), ElementsAre(a, b));
}

TEST_F(StoreRuns, TagsAndNotes) {
  const int64_t run = make_run(store_, "r");
  const int64_t other = make_run(store_, "o");
  store_.metadata().add_tag(run, "baseline");
  store_.metadata().add_tag(run, "baseline");  // idempotent
  store_.metadata().add_tag(run, "alpha");
  store_.metadata().add_tag(other, "zeta");
  EXPECT_THAT(store_.reader().tags(run), ElementsAre("alpha", "baseline"));
  EXPECT_THAT(store_.reader().all_tags(), ElementsAre("alpha", "baseline", "zeta"));
  store_.metadata().remove_tag(run, "alpha");
  EXPECT_THAT(store_.reader().tags(run), ElementsAre("baseline"));
  EXPECT_THROW(store_.metadata().add_tag(run, "   "), UserError);
  EXPECT_THROW(store_.metadata().add_tag(run, "a\nb"), UserError);

  EXPECT_EQ(store_.reader().note(run), "");
  store_.metadata().set_note(run, "lr too high?");
  store_.metadata().set_note(run, "lr fine; data order differs");
  EXPECT_EQ(store_.reader().note(run), "lr fine; data order differs");
  store_.metadata().set_note(run, "");
  EXPECT_EQ(store_.reader().note(run), "");
  EXPECT_EQ(query_int(path_, "SELECT count(*) FROM notes"), 0);
}

TEST_F(StoreRuns, EventsAndCheckpoints) {
  const int64_t run = make_run(store_, "r");
  const int64_t e1 = store_.writer(run).add_event("eval", R"({"val_loss": 3.2})", 100, 12.5);
  const int64_t e2 = store_.writer(run).add_event("log", R"({"msg": "hello"})");
  std::vector<EventRow> ev = store_.reader().events(run);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].id, e1);
  EXPECT_EQ(ev[0].kind, "eval");
  EXPECT_EQ(*ev[0].step, 100);
  EXPECT_DOUBLE_EQ(*ev[0].wall, 12.5);
  EXPECT_FALSE(ev[1].step.has_value());
  EXPECT_EQ(store_.reader().events(run, e1).front().id, e2);
  EXPECT_THROW(store_.writer(run).add_event("log", "not json"), UserError);

  const int64_t c1 = store_.writer(run).add_checkpoint(200, "/ckpt/step200.pt", 4096, "h200");
  store_.writer(run).add_checkpoint(100, "/ckpt/step100.pt", 2048, "h100");
  std::vector<CheckpointRow> ck = store_.reader().list_checkpoints(run);
  ASSERT_EQ(ck.size(), 2u);
  EXPECT_EQ(ck[0].step, 100);
  EXPECT_EQ(ck[1].path, "/ckpt/step200.pt");
  EXPECT_EQ(ck[1].bytes, 4096);
  EXPECT_EQ(store_.reader().latest_checkpoint(run)->hash, "h200");
  store_.writer(run).delete_checkpoint_row(c1);
  EXPECT_EQ(store_.reader().latest_checkpoint(run)->step, 100);
}

TEST_F(StoreRuns, DeleteRunCascadesToEveryTable) {
  const int64_t gone = make_run(store_, "gone");
  const int64_t kept = make_run(store_, "kept");
  for (int64_t run : {gone, kept}) {
    store_.writer(run).append_points(series("loss", 1, 50, [](int64_t s) { return 10.0 / s; }));
    store_.writer(run).add_event("log", "{}", 1);
    store_.writer(run).add_checkpoint(50, "/c", 1, "h");
    store_.metadata().add_tag(run, "t");
    store_.metadata().set_note(run, "n");
  }
  store_.metadata().delete_run(gone);
  EXPECT_FALSE(store_.reader().find_run(gone).has_value());
  const std::string g = std::to_string(gone), k = std::to_string(kept);
  for (const char* table :
       {"metric_points", "run_summaries", "events", "checkpoints", "tags", "notes"}) {
    EXPECT_EQ(
        query_int(path_, std::string("SELECT count(*) FROM ") + table + " WHERE run_id = " + g), 0)
        << table;
    EXPECT_GT(
        query_int(path_, std::string("SELECT count(*) FROM ") + table + " WHERE run_id = " + k), 0)
        << table;
  }
  EXPECT_EQ(store_.reader().points(kept, "loss").size(), 50u);
  EXPECT_EQ(store_.integrity_check(), "ok");
  EXPECT_EQ(query_int(path_, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
  EXPECT_EQ(query_int(path_, testing::kOrphanPoints), 0);
}

TEST_F(StoreRuns, MetricBufferFlushesBySizeAndOnDemand) {
  const int64_t run = make_run(store_, "r");
  {
    RunWriter writer = store_.writer(run);
    MetricBuffer buf(writer, /*max_points=*/4, std::chrono::hours(1));
    for (int64_t s = 1; s <= 3; ++s) buf.add("loss", s, s, s, 1.0 * s);
    EXPECT_EQ(buf.pending(), 3u);
    EXPECT_TRUE(store_.reader().points(run, "loss").empty());  // not written yet
    buf.add("loss", 4, 4, 4, 4.0);
    EXPECT_EQ(buf.pending(), 0u);
    EXPECT_EQ(store_.reader().points(run, "loss").size(), 4u);
    buf.add("loss", 5, 5, 5, 5.0);
    buf.flush();
    EXPECT_EQ(store_.reader().points(run, "loss").size(), 5u);
    buf.add("loss", 6, 6, 6, 6.0);
  }  // the destructor flushes the last point
  EXPECT_EQ(store_.reader().points(run, "loss").size(), 6u);

  // An age limit of zero writes every point at once (a live plot sees each step).
  RunWriter writer = store_.writer(run);
  MetricBuffer eager(writer, 1000, std::chrono::milliseconds(0));
  eager.add("loss", 7, 7, 7, 7.0);
  EXPECT_EQ(eager.pending(), 0u);
  EXPECT_EQ(store_.reader().points(run, "loss").size(), 7u);
}

TEST_F(StoreRuns, FailedBatchWritesNothingAndKeepsTheCacheConsistent) {
  const int64_t run = make_run(store_, "r");
  store_.writer(run).append_points({{"loss", 1, 1, 1, 1.0}});
  // A trigger makes the insert of one point fail after the batch has created a new metric name:
  // the whole batch must roll back, and the name's id must not stay in the connection's cache.
  store_.database().exec(
      "CREATE TEMP TRIGGER poison BEFORE INSERT ON metric_points WHEN NEW.value = 666 "
      "BEGIN SELECT RAISE(ABORT, 'poisoned point'); END");
  try {
    store_.writer(run).append_points({{"loss", 2, 2, 2, 0.5}, {"fresh_metric", 2, 2, 2, 666}});
    FAIL() << "the poisoned batch was written";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("poisoned point"));
    EXPECT_THAT(e.what(), HasSubstr(path_.string()));
  }
  EXPECT_EQ(query_int(path_, "SELECT count(*) FROM metric_names WHERE name = 'fresh_metric'"), 0);
  EXPECT_EQ(store_.reader().points(run, "loss").size(), 1u);
  SummaryRow s = summary_of(store_, run, "loss");
  EXPECT_EQ(s.count, 1);

  store_.writer(run).append_points({{"fresh_metric", 2, 2, 2, 1.0}});
  EXPECT_EQ(store_.reader().points(run, "fresh_metric").size(), 1u);
  // Checked on a separate connection (no cache): the point carries the name's real id.
  EXPECT_EQ(query_int(path_,
                      "SELECT count(*) FROM metric_points p JOIN metric_names n "
                      "ON n.id = p.metric_id WHERE n.name = 'fresh_metric'"),
            1);
  EXPECT_EQ(query_int(path_, testing::kOrphanPoints), 0);
  EXPECT_EQ(store_.integrity_check(), "ok");
  EXPECT_EQ(query_int(path_, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

TEST_F(StoreRuns, FullDiskIsAResourceErrorAndLosesOnlyTheFailedBatch) {
  const int64_t run = make_run(store_, "r");
  // max_page_count makes SQLite report SQLITE_FULL exactly as a full disk does.
  const int64_t pages = store_.database().query_int64("PRAGMA page_count");
  store_.database().exec("PRAGMA max_page_count = " + std::to_string(pages + 40));
  int written = 0;
  try {
    for (; written < 100; ++written) {
      store_.writer(run).append_points(
          series("loss", 1 + written * 1000, 1000, [](int64_t s) { return 1.0 / s; }));
    }
    FAIL() << "the page limit was never reached";
  } catch (const ResourceError& e) {
    EXPECT_EQ(e.message(),
              "The disk is full while writing the results database " + path_.string() + ".");
    EXPECT_THAT(e.hint(), HasSubstr("Free some space"));
    EXPECT_EQ(e.code(), kExitNoResource);
  }
  EXPECT_GT(written, 0);
  EXPECT_FALSE(store_.database().in_transaction());
  EXPECT_EQ(store_.integrity_check(), "ok");
  EXPECT_EQ(query_int(path_, "SELECT count(*) FROM metric_points"), written * 1000);
  // With space again, the same connection carries on.
  store_.database().exec("PRAGMA max_page_count = 1073741823");
  store_.writer(run).append_points(
      series("loss", 1 + written * 1000, 1000, [](int64_t) { return 0.5; }));
  EXPECT_EQ(summary_of(store_, run, "loss").count, (written + 1) * 1000);
}

TEST_F(StoreRuns, LostRunsAreDerivedFromHeartbeatAndPid) {
  // A process that has exited (and been reaped) cannot be running a run.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);

  auto start = [&](const std::string& name, int64_t pid, const std::string& host) {
    const int64_t id = make_run(store_, name);
    RunStart s;
    s.pid = pid;
    s.host = host;
    store_.writer(id).mark_started(s);
    return id;
  };
  const int64_t dead = start("dead", child, current_host());
  const int64_t alive = start("alive", ::getpid(), current_host());
  const int64_t remote = start("remote", 1, "another-host.invalid");
  const int64_t done = make_run(store_, "done");
  store_.writer(done).set_status(RunStatus::kFinished);

  // Fresh heartbeats (default threshold 120 s): the dead pid on this host is lost at once (a
  // SIGKILLed trainer writes nothing more); the remote one cannot be checked, so it is running
  // until its heartbeat goes stale.
  for (const RunRow& r : store_.reader().list_runs()) {
    EXPECT_EQ(r.effective_status, r.id == dead ? RunStatus::kLost : r.status) << r.name;
  }
  EXPECT_THAT(store_.reader().lost_runs(120), ElementsAre(dead));
  // A run whose process has not recorded its pid yet waits for a stale heartbeat too.
  const int64_t starting = make_run(store_, "starting");
  store_.database().exec("UPDATE runs SET status = 'running', host = '" + current_host() +
                         "', heartbeat_at = " + std::to_string(now_seconds()) +
                         " WHERE id = " + std::to_string(starting));
  EXPECT_EQ(store_.reader().get_run(starting).effective_status, RunStatus::kRunning);
  store_.writer(starting).set_status(RunStatus::kFailed, "gone");

  // Any heartbeat is stale for a zero threshold: the dead pid and the unreachable host are lost,
  // our own live process is not, and a finished run is never lost.
  EXPECT_THAT(store_.reader().lost_runs(0), ElementsAre(dead, remote));
  OpenOptions strict;
  strict.lost_after_seconds = 0;
  ResultsStore viewer(path_, strict);
  EXPECT_EQ(viewer.reader().get_run(dead).effective_status, RunStatus::kLost);
  EXPECT_EQ(viewer.reader().get_run(dead).status, RunStatus::kRunning);  // stored status unchanged
  EXPECT_EQ(viewer.reader().get_run(alive).effective_status, RunStatus::kRunning);
  EXPECT_EQ(viewer.reader().get_run(remote).effective_status, RunStatus::kLost);
  EXPECT_EQ(viewer.reader().get_run(done).effective_status, RunStatus::kFinished);
  std::vector<int64_t> lost;
  for (const RunRow& r : viewer.reader().list_runs(status(RunStatus::kLost))) lost.push_back(r.id);
  EXPECT_THAT(lost, ElementsAre(dead, remote));
  std::vector<int64_t> running;
  for (const RunRow& r : viewer.reader().list_runs(status(RunStatus::kRunning))) {
    running.push_back(r.id);
  }
  EXPECT_THAT(running, ElementsAre(alive));
  EXPECT_THROW(store_.writer(dead).set_status(RunStatus::kLost), std::invalid_argument);
}

TEST_F(StoreRuns, DataVersionChangesWhenAnotherConnectionCommits) {
  ResultsStore other(path_);
  const int64_t before = store_.reader().data_version();
  EXPECT_EQ(store_.reader().data_version(), before);
  make_run(other, "x");
  EXPECT_NE(store_.reader().data_version(), before);
}

}  // namespace
}  // namespace mmlab::store

namespace mmlab::store {
namespace {

TEST_F(StoreRuns, QueuedRunsAreCreatedTogetherClaimedOnceAndCancelled) {
  NewRun a;
  a.experiment_id = store_.ensure_experiment("quick-compare");
  a.name = "a";
  NewRun b = a;
  b.name = "b";
  NewRun bad = a;
  bad.name = "bad";
  bad.config_json = "{not json";
  // All or none: a refused row leaves no row of the batch behind.
  EXPECT_THROW(store_.create_runs({a, bad}), UserError);
  EXPECT_TRUE(store_.reader().list_runs().empty());
  const std::vector<int64_t> ids = store_.create_runs({a, b});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(store_.reader().get_run(ids[0]).status, RunStatus::kQueued);
  EXPECT_EQ(store_.reader().get_run(ids[1]).name, "b");

  // The first claim wins; a second process finds it taken and nothing changes.
  EXPECT_TRUE(store_.writer(ids[0]).claim_queued(::getpid(), current_host()));
  const RunRow claimed = store_.reader().get_run(ids[0]);
  EXPECT_EQ(claimed.status, RunStatus::kRunning);
  EXPECT_EQ(claimed.pid, ::getpid());
  EXPECT_EQ(claimed.effective_status, RunStatus::kRunning);
  EXPECT_FALSE(store_.writer(ids[0]).claim_queued(1, "other"));
  EXPECT_EQ(store_.reader().get_run(ids[0]).pid, ::getpid());
  store_.writer(ids[0]).record_start_config(R"({"model": {"vocab_size": 256}})", 300, "abc");
  EXPECT_EQ(store_.reader().get_run(ids[0]).config_json, R"({"model": {"vocab_size": 256}})");
  EXPECT_EQ(store_.reader().get_run(ids[0]).total_steps, 300);

  // Only a queued run can be taken off the queue.
  EXPECT_FALSE(store_.metadata().cancel_queued_run(ids[0], "no"));
  EXPECT_TRUE(store_.metadata().cancel_queued_run(ids[1], "Taken off the queue."));
  EXPECT_EQ(store_.reader().get_run(ids[1]).status, RunStatus::kStopped);
  EXPECT_EQ(store_.reader().get_run(ids[1]).error_text, "Taken off the queue.");
  EXPECT_FALSE(store_.writer(ids[1]).claim_queued(::getpid(), current_host()));
  EXPECT_THROW(store_.writer(999).claim_queued(1, "h"), UserError);
}

}  // namespace
}  // namespace mmlab::store
