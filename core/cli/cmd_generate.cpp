// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab score` (per-token log-probabilities of a text, as JSON) and `mmlab generate` (recurrent
// decoding of a continuation). Both load a run's latest checkpoint or a checkpoint file.
#include <cstdio>
#include <iostream>
#include <memory>

#include "core/cli/cli.h"
#include "core/cli/inference.h"
#include "core/train/device.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

struct ScoreArgs {
  ModelSource source;
  std::string text;
};

struct GenerateArgs {
  ModelSource source;
  std::string prompt;
  GenerateOptions options;
  std::uint64_t seed = 0;
  bool stats = false;
};

int run_score(const ScoreArgs& a, const Context& ctx) {
  set_cpu_threads(0);  // every core: Debian's OpenMP would use one
  InferenceModel m = load_inference_model(a.source, ctx.db_path());
  const ScoreResult r = score_text(m.model, *m.tokenizer, a.text);
  // A token of a byte-level vocabulary can be part of a UTF-8 character: replace, never throw.
  std::cout << to_json(r).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
            << "\n";
  return kExitOk;
}

int run_generate(const GenerateArgs& a, const Context& ctx) {
  set_cpu_threads(0);
  InferenceModel m = load_inference_model(a.source, ctx.db_path());
  std::cout << a.prompt << std::flush;
  const GenerateResult r =
      generate_text(m.model, *m.tokenizer, a.prompt, a.options,
                    [](const std::string& piece) { std::cout << piece << std::flush; });
  std::cout << "\n";
  if (a.stats) {
    const double n = static_cast<double>(r.ids.size());
    char line[256];
    std::snprintf(line, sizeof line,
                  "prompt: %zu tokens in %.1f ms; generated: %zu tokens in %.1f ms, %.1f "
                  "tokens/s (decode, ",
                  r.prompt_ids.size(), 1e3 * r.prefill_seconds, r.ids.size(),
                  1e3 * r.decode_seconds, r.decode_seconds > 0 ? n / r.decode_seconds : 0.0);
    std::cerr << line << describe_device(m.model->embedding->weight.device()) << ")\n";
  }
  return kExitOk;
}

}  // namespace

void add_generate_commands(CLI::App& app, Context& ctx) {
  auto score = std::make_shared<ScoreArgs>();
  CLI::App* s = app.add_subcommand(
      "score",
      "Per-token log-probabilities of a text under a model, as JSON: {\"tokens\": [{\"id\", "
      "\"text\", \"logprob\"}], \"total_logprob\", \"mean_nll\"}. The first token is conditioned "
      "on the end-of-text token; MoE layers route every token (no capacity limit).");
  add_model_source_options(s, score->source);
  s->add_option("--text", score->text, "The text to score")->required();
  add_db_option(s, ctx);
  s->callback([score, &ctx] { ctx.action = [score, &ctx] { return run_score(*score, ctx); }; });

  auto gen = std::make_shared<GenerateArgs>();
  CLI::App* g = app.add_subcommand(
      "generate",
      "Continue a prompt: Mamba layers decode recurrently with O(1) state per token, attention "
      "with a KV cache. Prints the prompt and its continuation; stops early at end-of-text.");
  add_model_source_options(g, gen->source);
  g->add_option("--prompt", gen->prompt, "Text to continue (may be empty)")->required();
  g->add_option("--tokens", gen->options.tokens, "New tokens at most")->capture_default_str();
  g->add_option("--temperature", gen->options.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  g->add_option("--top-k", gen->options.top_k, "Sample among the K most likely tokens; 0 = all")
      ->capture_default_str();
  CLI::Option* seed = g->add_option("--seed", gen->seed, "Random seed (default: a fresh one)");
  g->add_flag("--stats", gen->stats, "Print prompt and decode speed (tokens/s) to stderr");
  add_db_option(g, ctx);
  g->callback([gen, seed, &ctx] {
    if (seed->count() > 0) gen->options.seed = gen->seed;
    ctx.action = [gen, &ctx] { return run_generate(*gen, ctx); };
  });
}

}  // namespace mmlab::cli
