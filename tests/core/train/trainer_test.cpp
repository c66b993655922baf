// SPDX-License-Identifier: GPL-3.0-or-later
// The trainer in-process: a golden loss trajectory per family (catches silent changes to init,
// routing, schedules, data order), checkpoint round trips, stop/resume continuing the same curve,
// and user errors that leave no run behind as running.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <xxhash.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "core/config/experiment.h"
#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "core/train/trainer.h"
#include "core/util/build_info.h"
#include "core/util/error.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("XDG_DATA_HOME", (dir_ / "xdg").c_str(), 1);
    test::write_synthetic_corpus(dir_ / "corpus");
    options_.db = dir_ / "results.sqlite";
    options_.progress = "none";
    options_.experiment_name = "trainer-test";
    options_.checkpoint_root = dir_ / "checkpoints";
  }

  RunConfig tiny(const std::string& family, const std::string& pattern = "") {
    RunConfig r;
    r.name = family;
    r.seed = 1;
    r.model.family = family;
    r.model.pattern = pattern;
    r.model.n_block = 1;
    r.model.d_model = 32;
    r.model.head_dim = 16;
    r.model.n_expert = 4;
    r.model.d_expert = 64;
    r.model.d_ff = 64;
    r.model.d_state = 8;
    r.train.steps = 10;
    r.train.batch_size = 4;
    r.train.seq_len = 32;
    r.train.lr = 3e-3;
    r.train.warmup_frac = 0.1;
    r.train.eval_every = 0;
    r.train.eval_batches = 2;
    r.train.checkpoint_every = 0;
    r.train.threads = 1;
    r.data.source = (dir_ / "corpus").string();
    r.data.tokenizer = "byte";
    r.data.val_fraction = 0.2;
    return r;
  }

  std::vector<double> losses(int64_t run_id) {
    store::ResultsStore st(options_.db);
    std::vector<double> out;
    for (const auto& p : st.reader().points(run_id, "loss")) out.push_back(p.value);
    return out;
  }

  test::TempDir dir_;
  TrainerOptions options_;
};

class GoldenTrajectory : public TrainerTest,
                         public ::testing::WithParamInterface<std::pair<const char*, const char*>> {
};

TEST_P(GoldenTrajectory, TenCpuStepsMatchTheStoredLosses) {
  const std::string family = GetParam().first;
  TrainResult r = train_new_run(tiny(family, GetParam().second), options_);
  ASSERT_EQ(r.status, RunStatus::kFinished) << r.error;
  std::vector<double> got = losses(r.run_id);
  ASSERT_EQ(got.size(), 10u);
  const fs::path golden =
      fs::path(MMLAB_SOURCE_DIR) / "tests/core/train/golden" / (family + ".json");
  if (std::getenv("MMLAB_UPDATE_GOLDEN")) {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden) << nlohmann::json{{"loss", got}}.dump(2) << "\n";
    GTEST_SKIP() << "wrote " << golden;
  }
  ASSERT_TRUE(fs::exists(golden)) << "missing " << golden << "; run with MMLAB_UPDATE_GOLDEN=1";
  auto expected = nlohmann::json::parse(test::slurp(golden))["loss"].get<std::vector<double>>();
  ASSERT_EQ(expected.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 2e-3) << "step " << i + 1;
  // Learning happens: the last loss is below the first.
  EXPECT_LT(got.back(), got.front());
}

INSTANTIATE_TEST_SUITE_P(Families, GoldenTrajectory,
                         ::testing::Values(std::make_pair("transformer", ""),
                                           std::make_pair("transformer-moe", ""),
                                           std::make_pair("mamba", ""),
                                           std::make_pair("moe-mamba", ""),
                                           std::make_pair("parallel-moe-mamba", ""),
                                           std::make_pair("inner-moe-mamba", "M[conv=E,out=E] M")),
                         [](const auto& info) {
                           std::string n = info.param.first;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST_F(TrainerTest, RecordsTheCudaRuntimeVersion_CUDA) {
  // Not the word "cuda": the version, "major.minor", of the CUDA runtime the run trained with.
  RunConfig c = tiny("mamba");
  c.train.device = "cuda";
  TrainResult r = train_new_run(c, options_);
  ASSERT_EQ(r.status, RunStatus::kFinished) << r.error;
  const std::string version =
      store::ResultsStore(options_.db).reader().get_run(r.run_id).cuda_version;
  EXPECT_TRUE(std::regex_match(version, std::regex("[0-9]+\\.[0-9]+"))) << version;
}

TEST_F(TrainerTest, EveryCurveItRecordsIsANameOfTheOneMetricList) {
  // The studio's charts and the store's summaries know a curve by these names only: a metric the
  // trainer records under another name would be stored but never offered or summarised.
  RunConfig c = tiny("moe-mamba");
  c.train.eval_every = 5;
  TrainResult r = train_new_run(c, options_);
  ASSERT_EQ(r.status, RunStatus::kFinished) << r.error;
  store::ResultsStore st(options_.db);
  const auto names = st.reader().metric_names(r.run_id);
  ASSERT_GE(names.size(), 10u);
  for (const std::string& name : names) EXPECT_TRUE(metric::is_known(name)) << name;
}

TEST_F(TrainerTest, RecordsEveryMetricAndSummary) {
  RunConfig c = tiny("moe-mamba");
  c.train.eval_every = 5;
  TrainResult r = train_new_run(c, options_);
  ASSERT_EQ(r.status, RunStatus::kFinished) << r.error;
  store::ResultsStore st(options_.db);
  auto names = st.reader().metric_names(r.run_id);
  for (const char* m : {"loss", "loss_smooth", "lr", "grad_norm", "tokens_per_s", "step_time",
                        "aux_loss", "dropped_frac", "val_loss", "val_ppl", "expert_load/0/0"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
  }
  EXPECT_EQ(st.reader().points(r.run_id, "val_loss").size(), 2u);  // steps 5 and 10
  auto row = st.reader().get_run(r.run_id);
  EXPECT_EQ(row.status, store::RunStatus::kFinished);
  EXPECT_EQ(row.step, 10);
  EXPECT_EQ(row.tokens, 10 * 4 * 32);
  EXPECT_GT(row.params_total, row.params_active);
  EXPECT_EQ(row.cuda_version, "");         // a CPU run used no CUDA runtime
  EXPECT_EQ(row.git_rev, git_revision());  // the revision this program was built from
  ASSERT_TRUE(row.final_loss_smooth.has_value());
  EXPECT_NEAR(*row.final_loss_smooth, r.final_loss_smooth, 1e-9);
  // Expert loads of one layer at one step sum to 1.
  double sum = 0;
  for (int e = 0; e < 4; ++e)
    sum += st.reader().points(r.run_id, "expert_load/0/" + std::to_string(e)).back().value;
  EXPECT_NEAR(sum, 1.0, 1e-9);
  auto ckpts = st.reader().list_checkpoints(r.run_id);
  ASSERT_EQ(ckpts.size(), 1u);  // the final one
  // The stored hash (computed while writing) is the xxh64 of the file as it is on disk.
  const std::string bytes = test::slurp(ckpts[0].path);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  EXPECT_EQ(ckpts[0].hash, hex);
  EXPECT_EQ(ckpts[0].bytes, static_cast<int64_t>(bytes.size()));
}

TEST_F(TrainerTest, StoppedRunResumesOnTheSameCurve) {
  RunConfig c = tiny("mamba");
  c.train.steps = 12;
  c.train.checkpoint_every = 4;
  TrainResult whole = train_new_run(c, options_);  // the uninterrupted reference
  ASSERT_EQ(whole.status, RunStatus::kFinished) << whole.error;

  c.name = "stopped";
  request_stop();  // honoured after the current step, as SIGTERM is
  TrainResult first = train_new_run(c, options_);
  clear_stop_request();
  ASSERT_EQ(first.status, RunStatus::kStopped);
  {
    store::ResultsStore st(options_.db);
    auto row = st.reader().get_run(first.run_id);
    EXPECT_EQ(row.status, store::RunStatus::kStopped);
    EXPECT_EQ(row.step, 1);
    ASSERT_EQ(st.reader().list_checkpoints(first.run_id).size(), 1u);
  }
  TrainResult resumed = resume_run(first.run_id, options_);
  ASSERT_EQ(resumed.status, RunStatus::kFinished) << resumed.error;
  {
    // keep_checkpoints (2): of the checkpoints at steps 1, 4, 8 and 12 the last two remain, and
    // the files of the others are gone.
    store::ResultsStore st(options_.db);
    auto kept = st.reader().list_checkpoints(first.run_id);
    ASSERT_EQ(kept.size(), 2u);
    std::vector<int64_t> steps = {kept[0].step, kept[1].step};
    std::sort(steps.begin(), steps.end());
    EXPECT_EQ(steps, (std::vector<int64_t>{8, 12}));
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / "checkpoints"))
      files += e.is_regular_file();
    EXPECT_EQ(files, 2 + 2);  // this run's two, plus the reference run's (steps 8 and 12)
  }
  // Model, optimizer, RNG, data position and smoothed loss all continue: the same curve.
  std::vector<double> a = losses(whole.run_id), b = losses(first.run_id);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << "step " << i + 1;
  EXPECT_NEAR(resumed.final_loss_smooth, whole.final_loss_smooth, 1e-6);
  // Finished runs cannot be resumed.
  EXPECT_THROW(resume_run(first.run_id, options_), UserError);
}

TEST_F(TrainerTest, EverySessionRecordsItsStartSoPointsHaveExactClockTimesAndDurationIsTraining) {
  RunConfig c = tiny("transformer");
  c.train.steps = 6;
  c.train.checkpoint_every = 3;
  request_stop();  // stops after step 1
  TrainResult first = train_new_run(c, options_);
  clear_stop_request();
  ASSERT_EQ(first.status, RunStatus::kStopped);
  double stopped_at = 0, wall_at_stop = 0;
  {
    store::ResultsStore st(options_.db);
    const auto row = st.reader().get_run(first.run_id);
    ASSERT_TRUE(row.ended_at && row.started_at);
    stopped_at = *row.ended_at;
    wall_at_stop = st.reader().points(first.run_id, "loss").back().wall;
    const auto sessions = st.reader().sessions(first.run_id);
    ASSERT_EQ(sessions.size(), 1u);
    EXPECT_EQ(sessions[0].wall, 0);
    EXPECT_GE(sessions[0].started_at, *row.started_at);  // after data and model were ready
    EXPECT_LE(sessions[0].started_at + wall_at_stop, stopped_at);
  }
  TrainResult resumed = resume_run(first.run_id, options_);
  ASSERT_EQ(resumed.status, RunStatus::kFinished) << resumed.error;
  store::ResultsStore st(options_.db);
  const auto row = st.reader().get_run(first.run_id);
  const auto sessions = st.reader().sessions(first.run_id);
  ASSERT_EQ(sessions.size(), 2u);
  // The second session continues the training clock where the stop left it, and began after
  // the stop in real time.
  EXPECT_DOUBLE_EQ(sessions[1].wall, wall_at_stop);
  EXPECT_GE(sessions[1].started_at, stopped_at);
  // Every point of the second session falls between its start and the run's end.
  for (const auto& p : st.reader().points(first.run_id, "loss")) {
    if (p.step <= 1) continue;
    const double clock = sessions[1].started_at + (p.wall - sessions[1].wall);
    EXPECT_GE(clock, sessions[1].started_at) << p.step;
    EXPECT_LE(clock, *row.ended_at) << p.step;
  }
  // Duration: training seconds only (the last point's wall), not end minus first start.
  ASSERT_TRUE(row.duration_s);
  EXPECT_DOUBLE_EQ(*row.duration_s, st.reader().points(first.run_id, "loss_smooth").back().wall);
  EXPECT_LT(*row.duration_s, *row.ended_at - *row.started_at);
}

TEST_F(TrainerTest, GradientAccumulationEqualsTheLargerBatch) {
  // Two micro-batches of 4 windows draw the same 8 windows as one batch of 8, so a dense model
  // must follow the same curve (MoE capacity would differ with the batch size).
  RunConfig big = tiny("transformer");
  big.name = "batch-8";
  big.train.batch_size = 8;
  RunConfig accumulated = tiny("transformer");
  accumulated.name = "4x2";
  accumulated.train.batch_size = 4;
  accumulated.train.grad_accum = 2;
  TrainResult a = train_new_run(big, options_);
  TrainResult b = train_new_run(accumulated, options_);
  ASSERT_EQ(a.status, RunStatus::kFinished) << a.error;
  ASSERT_EQ(b.status, RunStatus::kFinished) << b.error;
  std::vector<double> la = losses(a.run_id), lb = losses(b.run_id);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-4) << "step " << i + 1;
  store::ResultsStore st(options_.db);
  EXPECT_EQ(st.reader().get_run(b.run_id).tokens, 10 * 8 * 32);
}

// Every weight of the checkpoint at `path` is finite.
bool checkpoint_is_finite(const fs::path& path) {
  RunConfig stored = read_checkpoint_config(path);
  LanguageModel model(stored.model);
  load_checkpoint(path, model, nullptr);
  return training_state_is_finite(model, nullptr);
}

TEST_F(TrainerTest, NonFiniteLossStopsTheRunAsDiverged) {
  RunConfig c = tiny("transformer");
  c.train.lr = 1e30;  // one Adam step of this size overflows the weights
  c.train.warmup_frac = 0;
  c.train.grad_clip = 0;
  c.train.checkpoint_every = 1;
  TrainResult r = train_new_run(c, options_);
  EXPECT_EQ(r.status, RunStatus::kDiverged);
  EXPECT_EQ(r.exit_code, kExitDiverged);
  store::ResultsStore st(options_.db);
  auto row = st.reader().get_run(r.run_id);
  EXPECT_EQ(row.status, store::RunStatus::kDiverged);
  EXPECT_EQ(row.error_text, r.error);
  // Every stored loss is finite, and no checkpoint holds a non-finite weight.
  for (const auto& p : st.reader().points(r.run_id, "loss")) EXPECT_TRUE(std::isfinite(p.value));
  for (const auto& ckpt : st.reader().list_checkpoints(r.run_id)) {
    EXPECT_TRUE(checkpoint_is_finite(ckpt.path)) << ckpt.path;
  }
}

class DivergedFamilies : public TrainerTest, public ::testing::WithParamInterface<const char*> {};

// Weights become NaN in the update of step 6, a checkpoint step whose loss was still finite (as
// an overflowing optimizer step makes them): that checkpoint is not written, and the run stops as
// diverged there, naming the newest finite checkpoint (step 4), which loads and is finite.
TEST_P(DivergedFamilies, KeepAndNameTheNewestFiniteCheckpoint) {
  RunConfig c = tiny(GetParam());
  c.train.checkpoint_every = 2;
  c.train.keep_checkpoints = 2;
  ::setenv("MMLAB_TEST_NAN_AT", "6", 1);
  TrainResult r = train_new_run(c, options_);
  ::unsetenv("MMLAB_TEST_NAN_AT");
  ASSERT_EQ(r.status, RunStatus::kDiverged) << r.error;
  EXPECT_EQ(r.exit_code, kExitDiverged);
  store::ResultsStore st(options_.db);
  auto kept = st.reader().list_checkpoints(r.run_id);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].step, 2);
  EXPECT_EQ(kept[1].step, 4);
  EXPECT_NE(r.error.find("at step 6"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("the last good checkpoint (step 4, " + kept[1].path + ") is kept"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(st.reader().get_run(r.run_id).error_text, r.error);
  for (const auto& k : kept) EXPECT_TRUE(checkpoint_is_finite(k.path)) << k.path;
  // Resuming the diverged run continues from that checkpoint.
  TrainResult again = resume_run(r.run_id, options_);
  EXPECT_EQ(again.status, RunStatus::kFinished) << again.error;
  EXPECT_EQ(losses(r.run_id).size(), 10u);
}

INSTANTIATE_TEST_SUITE_P(Families, DivergedFamilies,
                         ::testing::Values("transformer", "mamba", "moe-mamba"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

// The expert load an evaluation records covers the steps since the previous evaluation, also when
// the run was stopped and resumed in between.
TEST_F(TrainerTest, ResumedMoeRunRecordsTheSameExpertLoad) {
  RunConfig c = tiny("moe-mamba");
  c.train.eval_every = 5;
  TrainResult whole = train_new_run(c, options_);
  ASSERT_EQ(whole.status, RunStatus::kFinished) << whole.error;
  c.name = "stopped";
  request_stop();  // stops after step 1, between evaluations
  TrainResult first = train_new_run(c, options_);
  clear_stop_request();
  ASSERT_EQ(first.status, RunStatus::kStopped);
  TrainResult resumed = resume_run(first.run_id, options_);
  ASSERT_EQ(resumed.status, RunStatus::kFinished) << resumed.error;
  store::ResultsStore st(options_.db);
  for (int e = 0; e < 4; ++e) {
    const std::string m = "expert_load/0/" + std::to_string(e);
    auto a = st.reader().points(whole.run_id, m), b = st.reader().points(first.run_id, m);
    ASSERT_EQ(a.size(), 2u) << m;
    ASSERT_EQ(b.size(), a.size()) << m;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(b[i].step, a[i].step);
      EXPECT_EQ(b[i].value, a[i].value) << m << " at step " << a[i].step;
    }
  }
}

TEST_F(TrainerTest, UnknownRunAndMissingDataAreUserErrorsWithNoRunLeft) {
  EXPECT_THROW(resume_run(42, options_), UserError);
  RunConfig c = tiny("mamba");
  c.data.source = (dir_ / "no-such-corpus").string();
  try {
    train_new_run(c, options_);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-corpus"), std::string::npos) << e.what();
  }
  store::ResultsStore st(options_.db);
  EXPECT_TRUE(st.reader().list_runs().empty());
}

TEST_F(TrainerTest, RecordsTheOpImplementationsItsStepsUsed) {
  RunConfig c = tiny("mamba");
  c.train.steps = 2;
  c.train.ops.all = "reference";
  TrainResult r = train_new_run(c, options_);
  ASSERT_EQ(r.status, RunStatus::kFinished) << r.error;
  store::ResultsStore st(options_.db);
  EXPECT_EQ(nlohmann::json::parse(st.reader().get_run(r.run_id).ops_used),
            (nlohmann::json{{"causal_conv1d", "reference"},
                            {"lm_head_loss", "reference"},
                            {"mamba_inner", "reference"},
                            {"norm", "reference"},
                            {"selective_scan", "reference"}}));
  // A model without Mamba layers calls only the head's op, the norms and the attention heads'.
  RunConfig t = tiny("transformer");
  t.train.steps = 1;
  TrainResult rt = train_new_run(t, options_);
  ASSERT_EQ(rt.status, RunStatus::kFinished) << rt.error;
  EXPECT_EQ(
      nlohmann::json::parse(st.reader().get_run(rt.run_id).ops_used),
      (nlohmann::json{
          {"attention_heads", "reference"}, {"lm_head_loss", "reference"}, {"norm", "reference"}}));
}

TEST_F(TrainerTest, OpsChoiceThatCannotRunIsRefusedBeforeTheRunExists) {
  RunConfig c = tiny("mamba");
  c.train.ops.all = "no-such-kernel";
  try {
    train_new_run(c, options_);
    FAIL() << "an unknown implementation was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(e.message().find("has no implementation 'no-such-kernel'"), std::string::npos)
        << e.message();
  }
  store::ResultsStore st(options_.db);
  EXPECT_TRUE(st.reader().list_runs().empty());
}

TEST_F(TrainerTest, CheckpointOfAnotherModelIsRefused) {
  RunConfig c = tiny("moe-mamba");
  c.model.vocab_size = 257;
  torch::manual_seed(0);
  LanguageModel model(c.model);
  const fs::path ckpt = dir_ / "a.pt";
  TrainState state;
  state.step = 3;
  save_checkpoint(ckpt, c, model, nullptr, state);
  EXPECT_EQ(read_checkpoint_config(ckpt).model.family, "moe-mamba");
  TrainState back = load_checkpoint(ckpt, model, nullptr);
  EXPECT_EQ(back.step, 3);

  RunConfig other = c;
  other.model.d_model = 48;
  LanguageModel wrong(other.model);
  try {
    load_checkpoint(ckpt, wrong, nullptr);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("another model config"), std::string::npos) << e.what();
  }
  std::ofstream(dir_ / "junk.pt") << "not a checkpoint";
  EXPECT_THROW(load_checkpoint(dir_ / "junk.pt", model, nullptr), UserError);
  EXPECT_THROW(load_checkpoint(dir_ / "missing.pt", model, nullptr), UserError);
}

TEST_F(TrainerTest, FailedCheckpointWriteLeavesNoPartialFile) {
  RunConfig c = tiny("mamba");
  c.model.vocab_size = 257;
  LanguageModel model(c.model);
  const fs::path dir = dir_ / "ckpts";
  fs::create_directories(dir);
  // In a child: a file-size limit makes the write fail part-way, like a full disk.
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim {
      4096, 4096
    };
    ::setrlimit(RLIMIT_FSIZE, &lim);
    try {
      save_checkpoint(dir / "step-1.pt", c, model, nullptr, TrainState{});
    } catch (const UserError&) {
      ::_exit(0);
    }
    ::_exit(1);
  }
  EXPECT_EQ(test::wait_exit(pid), 0) << "the failed write was not reported as a user error";
  EXPECT_TRUE(fs::is_empty(dir)) << "a partial or temporary file was left behind";
}

}  // namespace
}  // namespace mmlab
