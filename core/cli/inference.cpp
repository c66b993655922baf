// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/inference.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "core/models/switch_moe.h"
#include "core/models/token_decoder.h"
#include "core/store/store.h"
#include "core/train/device.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// While alive, every Switch MoE of the model routes every token: capacity = floor(X * T / X) = T.
/// Inference scores one text, where capacity drops would depend on how that text happens to
/// load the experts rather than on the model.
class UncappedMoe {
 public:
  explicit UncappedMoe(LanguageModel& model) {
    for (SwitchMoeImpl* moe : model->moe_layers()) {
      saved_.emplace_back(moe, moe->options.capacity_factor());
      moe->options.capacity_factor(static_cast<double>(moe->options.n_expert()));
    }
  }
  ~UncappedMoe() {
    for (auto& [moe, factor] : saved_) moe->options.capacity_factor(factor);
  }
  UncappedMoe(const UncappedMoe&) = delete;
  UncappedMoe& operator=(const UncappedMoe&) = delete;

 private:
  std::vector<std::pair<SwitchMoeImpl*, double>> saved_;
};

torch::Device model_device(LanguageModel& model) {
  return model->embedding->weight.device();
}

/// (1, L) int64 on `device`.
torch::Tensor id_tensor(const std::vector<std::int32_t>& ids, torch::Device device) {
  std::vector<int64_t> wide(ids.begin(), ids.end());
  return torch::tensor(wide, torch::kLong).unsqueeze(0).to(device);
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// The next token from the last position's logits (V) fp32 on the CPU.
std::int32_t pick_token(torch::Tensor logits, const GenerateOptions& o, at::Generator& gen) {
  if (o.temperature <= 0) return static_cast<std::int32_t>(logits.argmax().item<int64_t>());
  logits = logits / o.temperature;
  torch::Tensor candidates;  // (k) ids the sample is drawn among
  if (o.top_k > 0 && o.top_k < logits.size(0)) {
    auto top = logits.topk(o.top_k);
    logits = std::get<0>(top);
    candidates = std::get<1>(top);
  }
  auto probs = torch::softmax(logits, 0);  // (k)
  const int64_t i = torch::multinomial(probs, 1, false, gen).item<int64_t>();
  return static_cast<std::int32_t>(candidates.defined() ? candidates[i].item<int64_t>() : i);
}

}  // namespace

void add_model_source_options(CLI::App* sub, ModelSource& source) {
  sub->add_option("RUN_ID", source.run,
                  "Run id (or uuid) in the results database: its latest checkpoint is used");
  sub->add_option("--checkpoint", source.checkpoint, "A checkpoint file (instead of RUN_ID)");
  sub->add_option("--device", source.device, "cpu, cuda or cuda:N")->capture_default_str();
}

fs::path resolve_checkpoint(const ModelSource& source, const fs::path& db) {
  if (!source.run.empty() && !source.checkpoint.empty()) {
    throw UserError("Both a run id and --checkpoint were given.",
                    "Give one of them: RUN_ID uses the run's latest checkpoint.", kExitUsage);
  }
  if (source.checkpoint.size()) return source.checkpoint;
  if (source.run.empty()) {
    throw UserError("No model was named.",
                    "Give a run id (see `mmlab runs list`) or --checkpoint FILE.", kExitUsage);
  }
  store::OpenOptions options;
  options.mode = store::Database::Mode::kReadOnly;
  store::ResultsStore results(db, options);
  store::RunRow run;
  if (all_digits(source.run)) {
    run = results.reader().get_run(std::stoll(source.run));
  } else if (auto found = results.reader().find_run_by_uuid(source.run)) {
    run = *found;
  } else {
    throw UserError("No run \"" + source.run + "\" in " + db.string() + ".",
                    "Give a run id or uuid from `mmlab runs list`, or --checkpoint FILE.");
  }
  auto latest = results.reader().latest_checkpoint(run.id);
  if (!latest) {
    throw UserError("Run " + std::to_string(run.id) + " has no checkpoint yet.",
                    "Wait for its first checkpoint (every train.checkpoint_every steps), or give "
                    "--checkpoint FILE.");
  }
  fs::path path = latest->path;
  // A database moved with its checkpoint folder beside it keeps working with relative paths.
  if (path.is_relative() && !fs::exists(path)) path = db.parent_path() / path;
  if (!fs::exists(path)) {
    throw UserError("The latest checkpoint of run " + std::to_string(run.id) + ", " + latest->path +
                        ", is missing.",
                    "Give another checkpoint of the run with --checkpoint FILE.");
  }
  return path;
}

std::unique_ptr<data::Tokenizer> checkpoint_tokenizer(const RunConfig& config,
                                                      const TrainState& state) {
  // Checkpoints record the tokenizer actually used; the data config is what was asked for.
  data::TokenizerSpec spec;
  spec.kind = state.tokenizer_kind.empty() ? config.data.tokenizer : state.tokenizer_kind;
  spec.path = state.tokenizer_kind.empty() ? config.data.tokenizer_path : state.tokenizer_path;
  auto tokenizer = data::load_tokenizer(spec);
  if (tokenizer->vocab_size() > config.model.vocab_size) {
    throw UserError("The " + spec.kind + " tokenizer (" + spec.path.string() + ") has " +
                        std::to_string(tokenizer->vocab_size()) + " tokens but the model only " +
                        std::to_string(config.model.vocab_size) + ".",
                    "It is not the tokenizer the model was trained with; restore that one.");
  }
  return tokenizer;
}

InferenceModel load_inference_model(const ModelSource& source, const fs::path& db,
                                    bool with_tokenizer) {
  InferenceModel m;
  m.checkpoint = resolve_checkpoint(source, db);
  const torch::Device device = resolve_device(source.device);
  m.config = read_checkpoint_config(m.checkpoint);
  m.model = LanguageModel(m.config.model);
  m.state = load_checkpoint(m.checkpoint, m.model, nullptr);
  m.model->to(device);
  m.model->eval();
  if (with_tokenizer) m.tokenizer = checkpoint_tokenizer(m.config, m.state);
  return m;
}

ScoreResult score_text(LanguageModel& model, const data::Tokenizer& tokenizer,
                       const std::string& text) {
  const std::vector<std::int32_t> ids = tokenizer.encode(text);
  if (ids.empty()) {
    throw UserError("The text to score is empty.", "Pass --text with at least one character.");
  }
  // Input: eot, t_0 … t_{L-2}; position i predicts t_i.
  std::vector<std::int32_t> input = {tokenizer.eot_id()};
  input.insert(input.end(), ids.begin(), ids.end() - 1);
  torch::NoGradGuard no_grad;
  UncappedMoe uncapped(model);
  const auto device = model_device(model);
  auto logits = model->forward(id_tensor(input, device)).logits[0];      // (L, V)
  auto logp = torch::log_softmax(logits.to(torch::kFloat32), -1).cpu();  // (L, V)
  auto target = id_tensor(ids, torch::kCPU)[0].unsqueeze(1);             // (L, 1)
  auto picked = logp.gather(1, target).squeeze(1).to(torch::kDouble);    // (L)
  ScoreResult r;
  auto acc = picked.accessor<double, 1>();
  for (size_t i = 0; i < ids.size(); ++i) {
    TokenScore t;
    t.id = ids[i];
    t.text = tokenizer.decode({ids[i]});
    t.logprob = acc[static_cast<int64_t>(i)];
    r.total_logprob += t.logprob;
    r.tokens.push_back(std::move(t));
  }
  r.mean_nll = -r.total_logprob / static_cast<double>(ids.size());
  return r;
}

nlohmann::ordered_json to_json(const ScoreResult& r) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
  for (const auto& t : r.tokens) {
    tokens.push_back(
        nlohmann::ordered_json{{"id", t.id}, {"text", t.text}, {"logprob", t.logprob}});
  }
  return nlohmann::ordered_json{
      {"tokens", tokens}, {"total_logprob", r.total_logprob}, {"mean_nll", r.mean_nll}};
}

GenerateResult generate_text(LanguageModel& model, const data::Tokenizer& tokenizer,
                             const std::string& prompt, const GenerateOptions& o,
                             const std::function<void(const std::string&)>& on_text) {
  if (o.tokens < 0) throw UserError("--tokens must be >= 0.", "", kExitUsage);
  if (o.top_k < 0) throw UserError("--top-k must be >= 0 (0 = no limit).", "", kExitUsage);
  if (!(o.temperature >= 0)) {
    throw UserError("--temperature must be >= 0 (0 = greedy).", "", kExitUsage);
  }
  GenerateResult r;
  r.prompt_ids = {tokenizer.eot_id()};
  const auto prompt_ids = tokenizer.encode(prompt);
  r.prompt_ids.insert(r.prompt_ids.end(), prompt_ids.begin(), prompt_ids.end());
  at::Generator gen = at::detail::createCPUGenerator(o.seed ? *o.seed : std::random_device{}());
  // Ids past the tokenizer's vocabulary (a model vocab padded for speed) cannot be decoded.
  const int64_t V = tokenizer.vocab_size();
  torch::NoGradGuard no_grad;
  const auto device = model_device(model);
  std::vector<LayerCache> caches;

  auto t0 = Clock::now();
  auto logits = model->decode(id_tensor(r.prompt_ids, device), caches);  // (1, L, Vm)
  auto last = logits[0][-1].narrow(0, 0, V).to(torch::kFloat32).cpu();   // (V)
  r.prefill_seconds = seconds_since(t0);

  std::string printed;
  TokenDecoder decoder(model, caches);  // a CUDA graph per token where the model allows
  t0 = Clock::now();
  for (int i = 0; i < o.tokens; ++i) {
    const std::int32_t next = pick_token(last, o, gen);
    if (o.stop_at_eot && next == tokenizer.eot_id()) break;
    r.ids.push_back(next);
    if (on_text) {
      // Byte-level tokenizers decode prefix-stably, so the new piece is the suffix.
      std::string text = tokenizer.decode(r.ids);
      if (text.compare(0, printed.size(), printed) == 0) {
        on_text(text.substr(printed.size()));
        printed = std::move(text);
      }
    }
    if (i + 1 == o.tokens) break;                      // the last token needs no further step
    logits = decoder.step(id_tensor({next}, device));  // (1, 1, Vm)
    last = logits[0][-1].narrow(0, 0, V).to(torch::kFloat32).cpu();  // (V)
    ++r.decode_steps;
  }
  r.decode_seconds = seconds_since(t0);
  r.text = tokenizer.decode(r.ids);
  if (on_text && printed != r.text && r.text.compare(0, printed.size(), printed) == 0) {
    on_text(r.text.substr(printed.size()));
  }
  return r;
}

}  // namespace mmlab::cli
