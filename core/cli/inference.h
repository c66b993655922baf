// SPDX-License-Identifier: GPL-3.0-or-later
// What `mmlab score`, `mmlab generate` and `mmlab export-model` share: finding a checkpoint (a
// file, or a run's latest one in the results database), rebuilding its model and tokenizer, and
// the two inference loops (per-token log-probabilities; recurrent sampling).
//
// Shapes: L length, V vocab.
#pragma once

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/data/tokenizer.h"
#include "core/models/language_model.h"
#include "core/train/checkpoint.h"

namespace mmlab::cli {

/// Where a model comes from: a run (id or uuid; its latest checkpoint) or a checkpoint file.
struct ModelSource {
  std::string run;         ///< positional RUN_ID; empty when --checkpoint is given
  std::string checkpoint;  ///< --checkpoint FILE
  std::string device = "cpu";
};

/// Adds the positional RUN_ID, --checkpoint FILE and --device to a subcommand.
void add_model_source_options(CLI::App* sub, ModelSource& source);

/// The checkpoint file `source` names: --checkpoint, or the latest checkpoint the database at
/// `db` records for the run. Neither or both given, an unknown run, a run without checkpoints or
/// a missing file are UserErrors saying what to pass instead.
std::filesystem::path resolve_checkpoint(const ModelSource& source,
                                         const std::filesystem::path& db);

struct InferenceModel {
  std::filesystem::path checkpoint;
  RunConfig config;
  TrainState state;
  LanguageModel model{nullptr};                ///< in eval mode, on the chosen device
  std::unique_ptr<data::Tokenizer> tokenizer;  ///< null when not asked for
};

/// Loads the checkpoint `source` names (see resolve_checkpoint) and, when `with_tokenizer`, the
/// tokenizer it was trained with (kind and path stored in the checkpoint).
InferenceModel load_inference_model(const ModelSource& source, const std::filesystem::path& db,
                                    bool with_tokenizer = true);

/// The tokenizer a checkpoint was trained with; one whose vocabulary is larger than the model's
/// is a UserError.
std::unique_ptr<data::Tokenizer> checkpoint_tokenizer(const RunConfig& config,
                                                      const TrainState& state);

struct TokenScore {
  std::int32_t id = 0;
  std::string text;      ///< the token alone, decoded
  double logprob = 0.0;  ///< log p(token | end-of-text, previous tokens)
};

struct ScoreResult {
  std::vector<TokenScore> tokens;
  double total_logprob = 0.0;
  double mean_nll = 0.0;  ///< -total_logprob / number of tokens
};

/// Log-probability of every token of `text` given the ones before it, the first conditioned on
/// the end-of-text id (documents start after one in our data layout). One full forward pass; MoE
/// layers route every token (no capacity limit), as in generation, so a token's score does not
/// depend on which other tokens share its expert. An empty text is a UserError.
ScoreResult score_text(LanguageModel& model, const data::Tokenizer& tokenizer,
                       const std::string& text);

/// {"tokens": [{"id", "text", "logprob"}], "total_logprob", "mean_nll"}, keys in that order.
nlohmann::ordered_json to_json(const ScoreResult& result);

struct GenerateOptions {
  int tokens = 100;          ///< new tokens at most
  double temperature = 0.8;  ///< 0 = greedy (argmax)
  int top_k = 50;            ///< sample among the k most likely; 0 = all
  std::optional<std::uint64_t> seed;
  bool stop_at_eot = true;  ///< an end-of-text token ends the continuation (not included)
};

struct GenerateResult {
  std::vector<std::int32_t> prompt_ids;  ///< end-of-text, then the prompt's tokens
  std::vector<std::int32_t> ids;         ///< the continuation
  std::string text;                      ///< the continuation, decoded
  double prefill_seconds = 0.0;          ///< the prompt's decode call
  double decode_seconds = 0.0;           ///< every one-token step
  std::int64_t decode_steps = 0;
};

/// Continues `prompt` (prefixed by end-of-text) with LanguageModel::decode: the prompt in one
/// call, then one token per call from the recurrent state (Mamba) / KV cache (attention).
/// `on_text` receives each new piece of the continuation as soon as it is decoded.
GenerateResult generate_text(LanguageModel& model, const data::Tokenizer& tokenizer,
                             const std::string& prompt, const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text = {});

}  // namespace mmlab::cli
