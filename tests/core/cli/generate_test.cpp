// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab score` and `mmlab generate` on a tiny model saved as a checkpoint with the byte
// tokenizer: scores equal log_softmax of a full forward computed here, greedy generation equals
// the argmax continuation of repeated full forwards, and the model is found by run id too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "core/cli/cli.h"
#include "core/cli/inference.h"
#include "core/data/tokenizer.h"
#include "core/io/hf_mamba.h"
#include "core/io/model_file.h"
#include "core/io/safetensors.h"
#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "test_support.h"

namespace mmlab::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

ModelConfig tiny(const std::string& family) {
  ModelConfig c;
  c.family = family;
  c.n_block = 2;
  c.d_model = 32;
  c.head_dim = 8;
  c.vocab_size = 257;  // the byte tokenizer's
  c.n_expert = 4;
  c.d_expert = 24;
  c.d_ff = 48;
  c.d_state = 4;
  c.capacity_factor = 4.0;  // no drops: a full forward routes like decode (no capacity limit)
  return c;
}

/// A model with random weights (noise on every tensor, so norms and D are not all ones) and its
/// checkpoint at `path`, recording the byte tokenizer.
LanguageModel save_tiny(const ModelConfig& c, const fs::path& path, uint64_t seed) {
  torch::manual_seed(seed);
  LanguageModel model(c);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.1);
  }
  RunConfig run;
  run.name = "tiny";
  run.model = c;
  TrainState state;
  state.step = 3;
  state.tokenizer_kind = "byte";
  save_checkpoint(path, run, model, nullptr, state);
  model->eval();
  return model;
}

/// (1, L) int64
torch::Tensor ids_tensor(const std::vector<int32_t>& ids) {
  return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0);
}

/// Runs the CLI with `args`, returning its exit code and stdout.
std::pair<int, std::string> run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "mmlab");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  // cli::run() may start the process again to set threading variables unless told it is done;
  // in a test binary that would re-run the tests.
  ::setenv("MMLAB_THREADING_SET", "1", 1);
  ::testing::internal::CaptureStdout();
  const int rc = run(static_cast<int>(argv.size()), argv.data());
  return {rc, ::testing::internal::GetCapturedStdout()};
}

class Inference : public ::testing::Test {
 protected:
  test::TempDir dir_;
  data::ByteTokenizer bytes_;
};

TEST_F(Inference, ScoreEqualsLogSoftmaxOfTheFullForward) {
  const fs::path ckpt = dir_ / "step-3.pt";
  LanguageModel model = save_tiny(tiny("mamba"), ckpt, 1);
  const std::string text = "Hello, mamba!";

  // Directly: position i sees eot, t_0 … t_{i-1} and predicts t_i.
  std::vector<int32_t> ids = bytes_.encode(text);
  std::vector<int32_t> input = {data::ByteTokenizer::kEot};
  input.insert(input.end(), ids.begin(), ids.end() - 1);
  torch::NoGradGuard no_grad;
  auto logp = torch::log_softmax(model(ids_tensor(input)).logits[0], -1);  // (L, V)

  ModelSource source;
  source.checkpoint = ckpt.string();
  InferenceModel m = load_inference_model(source, dir_ / "unused.sqlite");
  ASSERT_EQ(m.tokenizer->name(), "byte");
  ScoreResult r = score_text(m.model, *m.tokenizer, text);
  ASSERT_EQ(r.tokens.size(), ids.size());
  double total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(r.tokens[i].id, ids[i]);
    EXPECT_EQ(r.tokens[i].text, std::string(1, text[i]));
    EXPECT_NEAR(r.tokens[i].logprob, logp[int64_t(i)][ids[i]].item<double>(), 1e-6) << i;
    total += logp[int64_t(i)][ids[i]].item<double>();
  }
  EXPECT_NEAR(r.total_logprob, total, 1e-5);
  EXPECT_NEAR(r.mean_nll, -total / double(ids.size()), 1e-6);

  // The command prints the same numbers as JSON.
  auto [rc, out] = run_cli({"score", "--checkpoint", ckpt.string(), "--text", text});
  ASSERT_EQ(rc, 0) << out;
  const json j = json::parse(out);
  ASSERT_EQ(j.at("tokens").size(), ids.size());
  EXPECT_EQ(j["tokens"][1]["id"], 'e');
  EXPECT_EQ(j["tokens"][1]["text"], "e");
  EXPECT_NEAR(j["tokens"][4]["logprob"].get<double>(), r.tokens[4].logprob, 1e-12);
  EXPECT_NEAR(j["total_logprob"].get<double>(), r.total_logprob, 1e-9);
  EXPECT_NEAR(j["mean_nll"].get<double>(), r.mean_nll, 1e-9);
}

TEST_F(Inference, MoeScoresRouteEveryTokenWhateverTheCapacityFactor) {
  // Saved with capacity 1.0 (drops on a short text); the reference has room for every token.
  ModelConfig c = tiny("moe-mamba");
  c.capacity_factor = 1.0;
  const fs::path ckpt = dir_ / "moe.pt";
  LanguageModel model = save_tiny(c, ckpt, 2);
  c.capacity_factor = c.n_expert;
  LanguageModel roomy(c);
  {
    torch::NoGradGuard no_grad;
    auto src = model->named_parameters();
    for (auto& p : roomy->named_parameters()) p.value().copy_(src[p.key()]);
  }
  roomy->eval();
  const std::string text = "Switch experts route tokens.";
  std::vector<int32_t> input = {data::ByteTokenizer::kEot};
  std::vector<int32_t> ids = bytes_.encode(text);
  input.insert(input.end(), ids.begin(), ids.end() - 1);
  torch::NoGradGuard no_grad;
  auto logp = torch::log_softmax(roomy(ids_tensor(input)).logits[0], -1);  // (L, V)

  ModelSource source;
  source.checkpoint = ckpt.string();
  InferenceModel m = load_inference_model(source, dir_ / "unused.sqlite");
  ScoreResult r = score_text(m.model, *m.tokenizer, text);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_NEAR(r.tokens[i].logprob, logp[int64_t(i)][ids[i]].item<double>(), 1e-5) << i;
  }
  // Scoring leaves the model's own capacity factor as it was.
  EXPECT_EQ(m.model->moe_layers().at(0)->options.capacity_factor(), 1.0);
}

class GreedyGeneration : public Inference, public ::testing::WithParamInterface<std::string> {};

TEST_P(GreedyGeneration, EqualsTheArgmaxOfRepeatedFullForwards) {
  const fs::path ckpt = dir_ / "g.pt";
  LanguageModel model = save_tiny(tiny(GetParam()), ckpt, 3);
  const std::string prompt = "The cat";
  const int n = 16;

  std::vector<int32_t> seq = {data::ByteTokenizer::kEot};
  for (int32_t id : bytes_.encode(prompt)) seq.push_back(id);
  std::vector<int32_t> expected;
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < n; ++i) {
      auto logits = model(ids_tensor(seq)).logits[0][-1];  // (V)
      const auto next = static_cast<int32_t>(logits.argmax().item<int64_t>());
      if (next == data::ByteTokenizer::kEot) break;
      expected.push_back(next);
      seq.push_back(next);
    }
  }
  ASSERT_FALSE(expected.empty());

  ModelSource source;
  source.checkpoint = ckpt.string();
  InferenceModel m = load_inference_model(source, dir_ / "unused.sqlite");
  GenerateOptions o;
  o.tokens = n;
  o.temperature = 0;
  std::string streamed;
  GenerateResult r = generate_text(m.model, *m.tokenizer, prompt, o,
                                   [&](const std::string& piece) { streamed += piece; });
  EXPECT_EQ(r.ids, expected);
  EXPECT_EQ(r.text, bytes_.decode(expected));
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.prompt_ids.size(), prompt.size() + 1);

  // top-k 1 sampling is greedy too, at any temperature.
  o.temperature = 1.5;
  o.top_k = 1;
  o.seed = 7;
  EXPECT_EQ(generate_text(m.model, *m.tokenizer, prompt, o).ids, expected);

  // The command prints the prompt and the continuation.
  auto [rc, out] = run_cli({"generate", "--checkpoint", ckpt.string(), "--prompt", prompt,
                            "--tokens", std::to_string(n), "--temperature", "0"});
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(out, prompt + r.text + "\n");
}

INSTANTIATE_TEST_SUITE_P(Families, GreedyGeneration,
                         ::testing::Values("mamba", "transformer", "moe-mamba"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

TEST_F(Inference, SamplingIsReproducibleWithASeed) {
  const fs::path ckpt = dir_ / "s.pt";
  save_tiny(tiny("mamba"), ckpt, 4);
  ModelSource source;
  source.checkpoint = ckpt.string();
  InferenceModel m = load_inference_model(source, dir_ / "unused.sqlite");
  GenerateOptions o;
  o.tokens = 24;
  o.temperature = 1.0;
  o.top_k = 0;
  o.stop_at_eot = false;
  o.seed = 11;
  auto a = generate_text(m.model, *m.tokenizer, "x", o).ids;
  auto b = generate_text(m.model, *m.tokenizer, "x", o).ids;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 24u);
  o.seed = 12;
  EXPECT_NE(generate_text(m.model, *m.tokenizer, "x", o).ids, a);
}

TEST_F(Inference, ARunIdMeansItsLatestCheckpoint) {
  const fs::path db = dir_ / "results.sqlite";
  const fs::path old_ckpt = dir_ / "step-1.pt", new_ckpt = dir_ / "step-2.pt";
  save_tiny(tiny("mamba"), old_ckpt, 5);
  save_tiny(tiny("mamba"), new_ckpt, 6);
  int64_t run_id = 0;
  std::string uuid;
  {
    store::ResultsStore store(db);
    store::NewRun spec;
    spec.experiment_id = store.ensure_experiment("e");
    spec.name = "r";
    spec.family = "mamba";
    run_id = store.create_run(spec);
    uuid = store.reader().get_run(run_id).uuid;
    store.writer(run_id).add_checkpoint(1, old_ckpt.string(), 1, "h1");
    store.writer(run_id).add_checkpoint(2, new_ckpt.string(), 1, "h2");
  }
  ModelSource source;
  source.run = std::to_string(run_id);
  EXPECT_EQ(resolve_checkpoint(source, db), new_ckpt);
  source.run = uuid;
  EXPECT_EQ(resolve_checkpoint(source, db), new_ckpt);

  source.run = "999";
  EXPECT_THROW(resolve_checkpoint(source, db), UserError);
  source.run = std::to_string(run_id);
  source.checkpoint = old_ckpt.string();
  EXPECT_THROW(resolve_checkpoint(source, db), UserError);  // both given
  source = ModelSource{};
  EXPECT_THROW(resolve_checkpoint(source, db), UserError);  // neither

  // Through the command line: the run's newest checkpoint is scored.
  auto [rc, out] = run_cli({"score", std::to_string(run_id), "--db", db.string(), "--text", "ab"});
  ASSERT_EQ(rc, 0) << out;
  source.checkpoint = new_ckpt.string();
  InferenceModel m = load_inference_model(source, db);
  EXPECT_NEAR(json::parse(out)["total_logprob"].get<double>(),
              score_text(m.model, *m.tokenizer, "ab").total_logprob, 1e-9);
}

TEST_F(Inference, ExportModelWritesBothFormatsAndTheReferenceFile) {
  ModelConfig c = tiny("mamba");
  c.norm = "rmsnorm";
  c.final_norm = true;
  c.tie_embeddings = true;
  const fs::path ckpt = dir_ / "hf.pt";
  LanguageModel model = save_tiny(c, ckpt, 8);
  auto ids = torch::randint(0, 257, {1, 6}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto want = model(ids).logits;

  auto [rc, out] = run_cli({"export-model", "--checkpoint", ckpt.string(), "--out",
                            (dir_ / "hf").string(), "--format", "hf", "--with-reference-logits"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(torch::equal(import_hf_mamba(dir_ / "hf")(ids).logits, want));
  EXPECT_EQ(json::parse(read_file(dir_ / "hf" / "config.json"))["eos_token_id"],
            data::ByteTokenizer::kEot);
  SafetensorsFile ref = load_safetensors(dir_ / "hf" / "reference-logits.safetensors");
  EXPECT_EQ(ref.at("input_ids").sizes(), (std::vector<int64_t>{2, 64}));
  EXPECT_TRUE(torch::equal(ref.at("logits"), model(ref.at("input_ids")).logits));

  std::tie(rc, out) = run_cli(
      {"export-model", "--checkpoint", ckpt.string(), "--out", (dir_ / "m.safetensors").string()});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(torch::equal(load_model_safetensors(dir_ / "m.safetensors")(ids).logits, want));

  // A MoE-Mamba model has no Hugging Face layout: exit 3, nothing written.
  const fs::path moe = dir_ / "moe.pt";
  save_tiny(tiny("moe-mamba"), moe, 9);
  EXPECT_EQ(run_cli({"export-model", "--checkpoint", moe.string(), "--out",
                     (dir_ / "moe-hf").string(), "--format", "hf"})
                .first,
            kExitBadInput);
  EXPECT_FALSE(fs::exists(dir_ / "moe-hf" / "model.safetensors"));
}

TEST_F(Inference, BadRequestsAreUserErrors) {
  const fs::path ckpt = dir_ / "b.pt";
  save_tiny(tiny("mamba"), ckpt, 7);
  ModelSource source;
  source.checkpoint = ckpt.string();
  InferenceModel m = load_inference_model(source, dir_ / "unused.sqlite");
  EXPECT_THROW(score_text(m.model, *m.tokenizer, ""), UserError);
  GenerateOptions o;
  o.temperature = -1;
  EXPECT_THROW(generate_text(m.model, *m.tokenizer, "a", o), UserError);
  source.checkpoint = (dir_ / "missing.pt").string();
  EXPECT_THROW(load_inference_model(source, dir_ / "unused.sqlite"), UserError);
  // The command turns them into an exit code and one line.
  EXPECT_EQ(run_cli({"score", "--checkpoint", ckpt.string(), "--text", ""}).first, kExitBadInput);
  EXPECT_EQ(run_cli({"generate", "--prompt", "a"}).first, kExitUsage);
}

}  // namespace
}  // namespace mmlab::cli
