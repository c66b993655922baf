// SPDX-License-Identifier: GPL-3.0-or-later
// Experiment files: defaults merged into runs, seeds expanded, every problem reported with its
// JSON path, and run configs round-tripping through JSON (as the database stores them).
#include <gtest/gtest.h>

#include <set>

#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"

namespace mmlab {
namespace {

using nlohmann::json;

TEST(Experiment, RunsInheritDefaultsAndSeedsExpand) {
  json j = json::parse(R"({
    "name": "e", "defaults": {"model": {"d_model": 96, "n_expert": 6}, "train": {"lr": 0.002}},
    "runs": [{"name": "a", "model": {"family": "moe-mamba", "n_expert": 12}, "seeds": [3, 4]},
             {"name": "b", "model": {"family": "transformer", "head_dim": 32}, "train": {"lr": 0.01}, "seed": 9}]})");
  Experiment ex = parse_experiment(j, "test");
  ASSERT_EQ(ex.runs.size(), 3u);
  EXPECT_EQ(ex.runs[0].name, "a/seed-3");
  EXPECT_EQ(ex.runs[1].seed, 4);
  EXPECT_EQ(ex.runs[0].model.d_model, 96);
  EXPECT_EQ(ex.runs[0].model.n_expert, 12);  // the run's value wins
  EXPECT_DOUBLE_EQ(ex.runs[0].train.lr, 0.002);
  EXPECT_EQ(ex.runs[2].model.resolved_pattern(), "A F");
  EXPECT_DOUBLE_EQ(ex.runs[2].train.lr, 0.01);
  EXPECT_EQ(ex.runs[2].seed, 9);
}

TEST(Experiment, EveryProblemIsListedWithItsPath) {
  json j = json::parse(R"({"name": "e", "typo": 1, "runs": [
    {"name": "a", "model": {"d_model": 0, "norm": "batchnorm"}, "train": {"steps": 10, "tokens": 100}},
    {"name": "a", "model": {"family": "nope"}, "data": {"sampling": "sideways"}}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    const auto& p = e.problems();
    auto has = [&](const std::string& s) {
      for (const auto& x : p) {
        if (x.find(s) != std::string::npos) return true;
      }
      return false;
    };
    EXPECT_TRUE(has("$.typo: unknown key"));
    EXPECT_TRUE(has("$.runs[0].model.d_model: must be > 0, got 0."));
    EXPECT_TRUE(has("$.runs[0].model.norm: must be one of layernorm, rmsnorm"));
    EXPECT_TRUE(has("$.runs[0].train.tokens: give either steps or tokens"));
    EXPECT_TRUE(has("$.runs[1].model.family: Unknown model family 'nope'"));
    EXPECT_TRUE(has("$.runs[1].data.sampling: must be one of random, contiguous"));
    EXPECT_TRUE(has("$.runs[1].name: \"a\" is used by an earlier run."));
    EXPECT_EQ(p.size(), 7u);
    EXPECT_NE(std::string(e.what()).find("f.json has 7 problems"), std::string::npos);
  }
}

TEST(Experiment, AProblemOfTheDefaultsIsReportedOnceWhereItWasWritten) {
  // A bad lr in the defaults, shared by four runs (one of them with two seeds), and one run that
  // writes its own bad lr: two problems, each at the place the user wrote it.
  json j = json::parse(R"({"name": "e", "defaults": {"train": {"lr": -1, "steps": 10}},
    "runs": [{"name": "a"}, {"name": "b", "seeds": [1, 2]}, {"name": "c"}, {"name": "d"},
             {"name": "own", "train": {"lr": 0}}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems(), (std::vector<std::string>{"$.defaults.train.lr: must be > 0, got -1.",
                                                      "$.runs[4].train.lr: must be > 0, got 0."}));
  }
}

// Every kind of problem a defaults section can have (an unknown key, a wrong type, a bad op
// name, a broken rule) is one problem at $.defaults, however many runs inherit it.
TEST(Experiment, EveryKindOfProblemInTheDefaultsIsReportedOnceAtTheDefaults) {
  json j = json::parse(R"({"name": "e",
    "defaults": {"model": {"d_model": 0}, "data": {"sampling": "shuffled"},
                 "train": {"lrr": 1, "batch_size": "x", "ops": {"selective_scan": 1}}},
    "runs": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    std::set<std::string> got(e.problems().begin(), e.problems().end());
    EXPECT_EQ(got.size(), e.problems().size()) << e.what();  // none repeated
    EXPECT_EQ(got, (std::set<std::string>{
                       "$.defaults.model.d_model: must be > 0, got 0.",
                       "$.defaults.train.batch_size: must be an integer, got a string (\"x\").",
                       "$.defaults.train.lrr: unknown key. Valid keys here: adam_eps, "
                       "batch_size, beta1, beta2, checkpoint_every, device, dtype, ema_alpha, "
                       "eval_batches, eval_every, final_lr_frac, grad_accum, grad_clip, "
                       "keep_checkpoints, log_every, lr, no_decay_groups, ops, seq_len, steps, "
                       "threads, tokens, warmup_frac, weight_decay.",
                       "$.defaults.train.ops.selective_scan: must be an implementation name, "
                       "got 1.",
                       "$.defaults.data.sampling: must be one of random, contiguous, got "
                       "\"shuffled\"."}))
        << e.what();
  }
}

// A defaults section that is not an object was ignored without a word.
TEST(Experiment, ADefaultsSectionThatIsNotAnObjectIsAProblem) {
  json j = json::parse(R"({"name": "e", "defaults": {"train": 3},
    "runs": [{"name": "a"}, {"name": "b"}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems(), std::vector<std::string>{"$.defaults.train: must be an object."});
  }
}

TEST(Experiment, InvalidModelSizesNameTheKey) {
  json j =
      json::parse(R"({"name": "e", "runs": [{"name": "a", "model": {"family": "transformer-moe",
    "d_model": 100, "head_dim": 64, "n_expert": 0, "capacity_factor": 0, "d_state": 0,
    "pattern": "A Q"}}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    std::string all;
    for (const auto& p : e.problems()) all += p + "\n";
    EXPECT_NE(all.find("$.runs[0].model.n_expert: must be > 0"), std::string::npos) << all;
    EXPECT_NE(all.find("$.runs[0].model.capacity_factor: must be > 0"), std::string::npos) << all;
    EXPECT_NE(all.find("$.runs[0].model.d_state: must be > 0"), std::string::npos) << all;
    EXPECT_NE(all.find("$.runs[0].model.pattern: Unknown layer token 'Q'"), std::string::npos)
        << all;
  }
  json heads =
      json::parse(R"({"name": "e", "runs": [{"name": "a", "model": {"family": "transformer",
    "d_model": 100, "head_dim": 64}}]})");
  try {
    parse_experiment(heads, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_NE(e.problems()[0].find("$.runs[0].model.d_model: must be a multiple of head_dim (64)"),
              std::string::npos)
        << e.problems()[0];
  }
}

TEST(Experiment, MalformedJsonNamesTheLine) {
  try {
    parse_json_text("{\n\"name\": \"x\",\n\"runs\": [\n", "bad.json");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "bad.json:4:1: not valid JSON: the text ends inside the list that opens at 3:9; "
              "expected a value or ']'.");
  }
}

std::vector<std::string> data_problems(const json& data) {
  try {
    parse_experiment(json{{"name", "e"}, {"runs", {{{"name", "r"}, {"data", data}}}}}, "f.json");
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

TEST(DataConfig, TheDocumentedKeysAreReadAndRoundTrip) {
  const Experiment ex = parse_experiment(json::parse(R"({"name": "e", "runs": [{"name": "r",
    "data": {"source": "/c4", "format": "jsonl", "text_field": "body", "split": "blank_lines",
             "cache": false, "tokenizer": "sentencepiece", "tokenizer_vocab": 4096,
             "val_fraction": 0, "sampling": "contiguous"}}]})"),
                                         "f.json");
  const DataConfig& d = ex.runs[0].data;
  EXPECT_EQ(d.text_field, "body");
  EXPECT_EQ(d.split, "blank_lines");
  EXPECT_FALSE(d.cache);
  EXPECT_EQ(d.tokenizer_vocab, 4096);
  EXPECT_EQ(d.val_fraction, 0.0);  // no validation set
  const RunConfig back = run_config_from_json(to_json(ex.runs[0]));
  EXPECT_EQ(to_json(back.data), to_json(d));
  EXPECT_EQ(to_json(d)["text_field"], "body");
}

TEST(DataConfig, TheCorpusRulesApplyAtLoad) {
  // The rules the corpus is prepared by: what `mmlab validate` passes, `mmlab train` can train.
  EXPECT_EQ(data_problems({{"val_fraction", 0.7}}),
            (std::vector<std::string>{"$.runs[0].data.val_fraction: must be between 0 and 0.5 "
                                      "(e.g. 0.05; 0 = no validation), got 0.7."}));
  EXPECT_EQ(data_problems({{"val_fraction", 0.5}}), std::vector<std::string>{});
  EXPECT_EQ(data_problems({{"split", "lines"}}),
            (std::vector<std::string>{"$.runs[0].data.split: must be one of file, blank_lines, "
                                      "got \"lines\"."}));
  EXPECT_EQ(data_problems({{"text_field", ""}}).size(), 1u);
  EXPECT_EQ(data_problems({{"cache", 1}}),
            (std::vector<std::string>{
                "$.runs[0].data.cache: must be true or false, got an integer (1)."}));
  EXPECT_EQ(data_problems({{"tokenizer", "sentencepiece"}, {"tokenizer_vocab", 10}}).size(), 1u);
  // A loaded SentencePiece model has its own vocabulary: tokenizer_vocab is not used.
  EXPECT_EQ(data_problems({{"tokenizer", "sentencepiece"},
                           {"tokenizer_path", "/m.model"},
                           {"tokenizer_vocab", 10}}),
            std::vector<std::string>{});
  EXPECT_EQ(data_problems({{"vocab_size", 4096}}).size(), 1u);  // one name: tokenizer_vocab
}

TEST(RunConfig, RoundTripsThroughJson) {
  RunConfig c;
  c.name = "x";
  c.seed = 5;
  c.model.family = "inner-moe-mamba";
  c.model.pattern = "M[gate=E] M";
  c.model.vocab_size = 300;
  c.train.tokens = 1 << 20;
  c.train.steps = 0;
  c.data.tokenizer = "sentencepiece";
  RunConfig back = run_config_from_json(to_json(c));
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_EQ(back.train.resolved_steps(), (1 << 20) / c.train.tokens_per_step());
}

TEST(RunConfig, OpsIsANameOrAnObjectPerOpAndRoundTrips) {
  json j = json::parse(R"({"name": "e", "runs": [
    {"name": "default"},
    {"name": "all", "train": {"ops": "reference"}},
    {"name": "per-op", "train": {"ops": {"selective_scan": "cuda", "causal_conv1d": "reference"}}}]})");
  Experiment ex = parse_experiment(j, "test");
  ASSERT_EQ(ex.runs.size(), 3u);
  EXPECT_EQ(ex.runs[0].train.ops.all, "auto");
  EXPECT_TRUE(ex.runs[0].train.ops.per_op.empty());
  EXPECT_EQ(ex.runs[1].train.ops.for_op("selective_scan"), "reference");
  EXPECT_EQ(ex.runs[2].train.ops.for_op("selective_scan"), "cuda");
  EXPECT_EQ(ex.runs[2].train.ops.for_op("causal_conv1d"), "reference");
  EXPECT_EQ(ex.runs[2].train.ops.for_op("selective_state_update"), "auto");
  EXPECT_EQ(to_json(ex.runs[1].train)["ops"], "reference");
  for (const RunConfig& r : ex.runs) {
    RunConfig back = run_config_from_json(to_json(r));
    EXPECT_EQ(to_json(back), to_json(r));
    EXPECT_EQ(back.train.ops.per_op, r.train.ops.per_op);
    EXPECT_EQ(back.train.ops.all, r.train.ops.all);
  }
}

TEST(RunConfig, MalformedOpsNameTheirPath) {
  json j = json::parse(R"({"name": "e", "runs": [
    {"name": "a", "train": {"ops": 3}},
    {"name": "b", "train": {"ops": ""}},
    {"name": "c", "train": {"ops": {"selective_scan": 1}}}]})");
  try {
    parse_experiment(j, "f.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 3u) << e.what();
    EXPECT_NE(e.problems()[0].find("$.runs[0].train.ops: must be an implementation name"),
              std::string::npos)
        << e.problems()[0];
    EXPECT_NE(e.problems()[1].find("$.runs[1].train.ops: must be an implementation name"),
              std::string::npos)
        << e.problems()[1];
    EXPECT_NE(e.problems()[2].find("$.runs[2].train.ops.selective_scan: must be an "
                                   "implementation name, got 1."),
              std::string::npos)
        << e.problems()[2];
  }
}

TEST(LayerPattern, FamiliesAndInnerMoeTokens) {
  ModelConfig c;
  c.family = "parallel-moe-mamba";
  c.n_block = 3;
  auto layers = expand_layers(c);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].kind, LayerKind::kParallelMambaMoe);
  auto inner = parse_pattern("M[conv=E,out=E] M");
  ASSERT_EQ(inner.size(), 2u);
  EXPECT_TRUE(inner[0].conv_moe && inner[0].out_moe && !inner[0].gate_moe);
  EXPECT_FALSE(inner[1].has_moe());
  EXPECT_THROW(parse_pattern("M[conv=F]"), UserError);
  EXPECT_THROW(parse_pattern("M[up=E]"), UserError);
  EXPECT_THROW(parse_pattern(""), UserError);
}

}  // namespace
}  // namespace mmlab
