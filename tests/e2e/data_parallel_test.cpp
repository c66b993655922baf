// SPDX-License-Identifier: GPL-3.0-or-later
// Data-parallel training as processes: 2 Gloo ranks on this host (through `mmlab launch`, or
// started here with torchrun's variables) against one process with the same config. Two ranks end
// with the parameters of one process; a batch that does not divide is refused; a rank that dies
// or hangs ends the other within the timeout with one sentence; a run of 2 ranks resumes on 1 and
// goes on along the uninterrupted curve.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>

#include "core/models/language_model.h"
#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "core/train/rank_group.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

// step -> value.
using Curve = std::map<int64_t, double>;

Curve curve(const fs::path& db, const std::string& metric) {
  store::ResultsStore st(db);
  Curve c;
  for (const auto& p : st.reader().points(st.reader().list_runs().at(0).id, metric))
    c[p.step] = p.value;
  return c;
}

// The weights of a checkpoint file, by name.
std::map<std::string, torch::Tensor> weights(const fs::path& checkpoint) {
  const RunConfig config = read_checkpoint_config(checkpoint);
  LanguageModel model(config.model);
  load_checkpoint(checkpoint, model, nullptr);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

// Two CPU ranks talk through Gloo; a LibTorch without its headers (PyTorch's CUDA wheels) builds
// an mmlab that refuses CPU data-parallel runs in one sentence instead.
#define SKIP_WITHOUT_GLOO()                              \
  if (!process_groups_built(torch::kCPU)) {              \
    GTEST_SKIP() << "this mmlab was built without Gloo"; \
  }

void expect_close(const Curve& got, const Curve& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [step, value] : want) {
    ASSERT_TRUE(got.count(step)) << what << " step " << step;
    EXPECT_NEAR(got.at(step), value, rel * std::abs(value)) << what << " step " << step;
  }
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_synthetic_corpus(dir_ / "corpus", 6, 80);
    env_ = {{"XDG_DATA_HOME", (dir_ / "xdg").string()}};
  }

  // A tiny Mamba (dense: a MoE's capacity and balancing loss are per batch shard, so only a dense
  // model trains exactly the same on 2 ranks as on 1), 2 micro-batches per step.
  fs::path write_experiment(int64_t steps, int batch_size, int checkpoint_every) {
    nlohmann::json ex = {
        {"name", "dp"},
        {"runs",
         {{{"name", "mamba"},
           {"model", {{"family", "mamba"}, {"d_model", 16}, {"n_block", 1}, {"d_state", 4}}},
           {"train",
            {{"steps", steps},
             {"batch_size", batch_size},
             {"grad_accum", 2},
             {"seq_len", 16},
             {"lr", 3e-3},
             {"eval_every", 10},
             {"eval_batches", 3},
             {"checkpoint_every", checkpoint_every},
             {"keep_checkpoints", 5},
             {"threads", 1}}},
           {"data",
            {{"source", (dir_ / "corpus").string()},
             {"tokenizer", "byte"},
             {"val_fraction", 0.2}}}}}}};
    const fs::path p = dir_ / "experiment.json";
    std::ofstream(p) << ex.dump(2);
    return p;
  }

  test::ProcessResult mmlab(const std::vector<std::string>& args,
                            std::map<std::string, std::string> extra_env = {}) {
    auto env = env_;
    env.insert(extra_env.begin(), extra_env.end());
    return test::run_mmlab(args, env, dir_.path());
  }

  // `mmlab train args...` as rank `rank` of 2, started in the background.
  pid_t spawn_rank(int rank, int port, const std::vector<std::string>& args,
                   std::map<std::string, std::string> extra_env = {}) {
    auto env = env_;
    env.insert(extra_env.begin(), extra_env.end());
    env.insert({{"RANK", std::to_string(rank)},
                {"WORLD_SIZE", "2"},
                {"LOCAL_RANK", std::to_string(rank)},
                {"MASTER_ADDR", "127.0.0.1"},
                {"MASTER_PORT", std::to_string(port)}});
    const std::string name = "rank" + std::to_string(rank);
    return test::spawn_mmlab(args, env, (dir_ / (name + ".out")).string(),
                             (dir_ / (name + ".err")).string());
  }

  std::string rank_err(int rank) {
    return test::slurp(dir_ / ("rank" + std::to_string(rank) + ".err"));
  }

  fs::path checkpoint_at(const fs::path& db, int64_t step) {
    store::ResultsStore st(db);
    for (const auto& c : st.reader().list_checkpoints(st.reader().list_runs().at(0).id)) {
      if (c.step == step) return c.path;
    }
    ADD_FAILURE() << "no checkpoint at step " << step << " in " << db;
    return {};
  }

  test::TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(DataParallel, TwoGlooRanksEndWithTheParametersOfOneProcess) {
  SKIP_WITHOUT_GLOO();
  const fs::path exp = write_experiment(20, 4, 20);
  const fs::path one = dir_ / "one.sqlite", two = dir_ / "two.sqlite";
  auto r = mmlab({"train", exp.string(), "--db", one.string(), "--progress", "none",
                  "--checkpoint-dir", (dir_ / "ck-one").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = mmlab({"launch", "--nproc", "2", "--", "train", exp.string(), "--db", two.string(),
             "--progress", "jsonl", "--checkpoint-dir", (dir_ / "ck-two").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Rank 0 alone wrote: one run, one checkpoint folder, one progress stream (20 steps).
  store::ResultsStore st(two);
  const auto runs = st.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(st.reader().get_run(runs[0].id).status, store::RunStatus::kFinished);
  EXPECT_NE(st.reader().get_run(runs[0].id).device.find("x 2 ranks"), std::string::npos);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "ck-two"), fs::directory_iterator{}), 1);
  size_t step_events = 0;
  for (size_t at = 0; (at = r.out.find("\"event\":\"step\"", at)) != std::string::npos; ++at) {
    ++step_events;
  }
  EXPECT_EQ(step_events, 20u) << r.out;

  // The same curve (the loss is averaged over the ranks; tokens/s summed) ...
  expect_close(curve(two, "loss"), curve(one, "loss"), 1e-5, "loss");
  expect_close(curve(two, "val_loss"), curve(one, "val_loss"), 1e-5, "val_loss");
  expect_close(curve(two, "grad_norm"), curve(one, "grad_norm"), 1e-4, "grad_norm");
  // ... and the same weights, up to the rounding of fp32 all-reduces.
  const auto a = weights(checkpoint_at(one, 20)), b = weights(checkpoint_at(two, 20));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, w] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const double diff = (b.at(name) - w).abs().max().item<double>();
    const double scale = w.abs().max().item<double>();
    EXPECT_LE(diff, 1e-5 * scale + 1e-7) << name;
  }
}

TEST_F(DataParallel, ABatchThatDoesNotDivideIsRefusedBeforeAnyRun) {
  const fs::path exp = write_experiment(4, 3, 4);
  const fs::path db = dir_ / "odd.sqlite";
  auto r = mmlab({"launch", "--nproc", "2", "--", "train", exp.string(), "--db", db.string(),
                  "--progress", "none"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("train.batch_size 3 of run mamba does not divide by the 2 ranks"),
            std::string::npos)
      << r.err;
  // Both ranks end with it (rank 1 when rank 0 releases it); the launch names the first.
  EXPECT_NE(r.err.find(" of 2 exited with code 3; stopping the other ranks."), std::string::npos)
      << r.err;
  if (fs::exists(db)) {
    EXPECT_TRUE(store::ResultsStore(db).reader().list_runs().empty());
  }
}

TEST_F(DataParallel, ARankKilledMidRunEndsTheOtherWithOneSentence) {
  SKIP_WITHOUT_GLOO();
  const fs::path exp = write_experiment(20, 4, 5);
  const fs::path db = dir_ / "killed.sqlite";
  const std::vector<std::string> args = {"train",      exp.string(), "--db",           db.string(),
                                         "--progress", "none",       "--rank-timeout", "60"};
  const int port = test::free_loopback_port();
  const pid_t rank0 = spawn_rank(0, port, args);
  const pid_t rank1 =
      spawn_rank(1, port, args, {{"MMLAB_TEST_KILL_AT", "step:3"}, {"MMLAB_TEST_FAULT_RANK", "1"}});
  EXPECT_EQ(test::wait_exit(rank1), -SIGKILL);
  EXPECT_EQ(test::wait_exit(rank0), 1) << rank_err(0);
  EXPECT_NE(rank_err(0).find("Rank 0 of 2 lost the other ranks while"), std::string::npos)
      << rank_err(0);
  store::ResultsStore st(db);
  const auto row = st.reader().get_run(st.reader().list_runs().at(0).id);
  EXPECT_EQ(row.status, store::RunStatus::kFailed);
  EXPECT_NE(row.error_text.find("lost the other ranks"), std::string::npos) << row.error_text;
}

TEST_F(DataParallel, ARankThatHangsEndsTheOtherWhenTheTimeoutPasses) {
  SKIP_WITHOUT_GLOO();
  const fs::path exp = write_experiment(20, 4, 5);
  const fs::path db = dir_ / "hung.sqlite";
  const std::vector<std::string> args = {"train",      exp.string(), "--db",           db.string(),
                                         "--progress", "none",       "--rank-timeout", "3"};
  const int port = test::free_loopback_port();
  const pid_t rank0 = spawn_rank(0, port, args);
  const pid_t rank1 =
      spawn_rank(1, port, args, {{"MMLAB_TEST_STOP_AT", "step:2"}, {"MMLAB_TEST_FAULT_RANK", "1"}});
  // Rank 1 is stopped (alive, silent): rank 0 gives up on it after 3 s.
  EXPECT_EQ(test::wait_exit(rank0), 1) << rank_err(0);
  EXPECT_NE(rank_err(0).find("did not answer within 3 s (--rank-timeout)"), std::string::npos)
      << rank_err(0);
  ::kill(rank1, SIGKILL);
  EXPECT_EQ(test::wait_exit(rank1), -SIGKILL);
}

TEST_F(DataParallel, RankZeroKilledEndsTheOthersAndTheLaunchNamesIt) {
  SKIP_WITHOUT_GLOO();
  const fs::path exp = write_experiment(20, 4, 5);
  const fs::path db = dir_ / "launch-killed.sqlite";
  auto r = mmlab({"launch", "--nproc", "2", "--", "train", exp.string(), "--db", db.string(),
                  "--progress", "none", "--rank-timeout", "60"},
                 {{"MMLAB_TEST_KILL_AT", "step:4"}, {"MMLAB_TEST_FAULT_RANK", "0"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("mmlab launch: rank 0 of 2 was killed by signal 9"), std::string::npos)
      << r.err;
}

TEST_F(DataParallel, TwoRanksResumedOnOneGoOnAlongTheUninterruptedCurve) {
  SKIP_WITHOUT_GLOO();
  const fs::path exp = write_experiment(20, 4, 5);
  const fs::path ref = dir_ / "ref.sqlite", db = dir_ / "resumed.sqlite";
  auto r = mmlab({"train", exp.string(), "--db", ref.string(), "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Rank 0 is killed after step 12 (checkpoints at 5 and 10); rank 1 then fails too.
  r = mmlab({"launch", "--nproc", "2", "--", "train", exp.string(), "--db", db.string(),
             "--progress", "none"},
            {{"MMLAB_TEST_KILL_AT", "step:12"}, {"MMLAB_TEST_FAULT_RANK", "0"}});
  ASSERT_NE(r.exit_code, 0);
  int64_t run_id = 0;
  {
    store::ResultsStore st(db);
    run_id = st.reader().list_runs().at(0).id;
    ASSERT_EQ(st.reader().latest_checkpoint(run_id)->step, 10);
  }
  r = mmlab(
      {"train", "--resume", std::to_string(run_id), "--db", db.string(), "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_close(curve(db, "loss"), curve(ref, "loss"), 1e-4, "loss");
  expect_close(curve(db, "val_loss"), curve(ref, "val_loss"), 1e-4, "val_loss");
}

}  // namespace
}  // namespace mmlab
