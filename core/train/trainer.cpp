// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <optional>
#include <unordered_map>

#include "core/config/param_count.h"
#include "core/data/corpus.h"
#include "core/data/sampler.h"
#include "core/models/language_model.h"
#include "core/models/op_choice.h"
#include "core/ops/torch_compat.h"
#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "core/train/device.h"
#include "core/train/progress.h"
#include "core/train/schedule.h"
#include "core/util/error.h"
#include "core/util/fs.h"

#ifndef MMLAB_GIT_REV
#define MMLAB_GIT_REV "unknown"
#endif

namespace mmlab {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using store::RunStatus;

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  g_stop.store(true);
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

data::DataSpec data_spec(const DataConfig& d) {
  data::DataSpec s;
  s.source = d.source;
  s.format = d.format;
  s.tokenizer = d.tokenizer;
  s.tokenizer_path = d.tokenizer_path;
  s.vocab_size = d.tokenizer_vocab;
  s.val_fraction = d.val_fraction;
  s.sampling = d.sampling;
  return s;
}

// Entropy (nats) of the token frequencies.
double unigram_entropy(const std::vector<int32_t>& tokens) {
  std::unordered_map<int32_t, int64_t> counts;
  for (int32_t t : tokens) ++counts[t];
  const double n = static_cast<double>(tokens.size());
  double h = 0;
  for (const auto& [token, c] : counts) h -= c / n * std::log(c / n);
  return h;
}

// Builds AdamW with weight decay on everything (the paper's code) or, with no_decay_groups, none
// on norms, biases, A_log and D.
std::unique_ptr<torch::optim::AdamW> make_optimizer(LanguageModel& model, const TrainConfig& t) {
  auto opts = torch::optim::AdamWOptions(t.lr)
                  .betas({t.beta1, t.beta2})
                  .eps(t.adam_eps)
                  .weight_decay(t.weight_decay);
  if (!t.no_decay_groups) return std::make_unique<torch::optim::AdamW>(model->parameters(), opts);
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    const std::string& n = p.key();
    const bool exempt = p.value().dim() < 2 || n.find("norm") != std::string::npos ||
                        n.find("A_log") != std::string::npos;
    (exempt ? no_decay : decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  auto nd = std::make_unique<torch::optim::AdamWOptions>(opts);
  nd->weight_decay(0.0);
  groups.emplace_back(no_decay, std::move(nd));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), opts);
}

class TrainingSession {
 public:
  TrainingSession(RunConfig config, const TrainerOptions& options)
      : config_(std::move(config)),
        options_(options),
        sink_(make_progress_sink(options.progress)) {}

  // New run: everything that can fail on user input happens before the run row exists.
  TrainResult start_new() {
    prepare();
    store_ = std::make_unique<store::ResultsStore>(options_.db);
    store::NewRun nr;
    nr.experiment_id =
        store_->ensure_experiment(options_.experiment_name, options_.experiment_spec);
    nr.name = config_.name;
    nr.family = config_.model.family;
    nr.config_json = to_json(config_).dump();
    nr.seed = config_.seed;
    nr.total_steps = total_steps_;
    nr.git_rev = MMLAB_GIT_REV;
    nr.status = RunStatus::kRunning;
    run_id_ = store_->create_run(nr);
    return run_guarded();
  }

  TrainResult resume(int64_t run_id, std::unique_ptr<store::ResultsStore> st) {
    store_ = std::move(st);
    run_id_ = run_id;
    prepare();
    store_->set_status(run_id_, RunStatus::kRunning);
    auto ckpt = store_->latest_checkpoint(run_id_);
    if (ckpt && fs::exists(ckpt->path)) resume_from_ = ckpt->path;
    return run_guarded();
  }

 private:
  void prepare() {
    check_ops_choice(config_);
    set_cpu_threads(config_.train.threads);
    device_ = resolve_device(config_.train.device);
    log("info", "Preparing data (" + config_.data.source + ", " + config_.data.tokenizer + ")");
    corpus_ = data::prepare_corpus(data_spec(config_.data), [&](double f) {
      sink_->emit("log", {{"level", "info"}, {"message", "tokenizing"}, {"fraction", f}});
    });
    const int vocab = corpus_.tokenizer->vocab_size();
    if (config_.model.vocab_size == 0) config_.model.vocab_size = vocab;
    if (config_.model.vocab_size < vocab) {
      throw UserError("model.vocab_size (" + std::to_string(config_.model.vocab_size) +
                          ") is smaller than the tokenizer's vocabulary (" + std::to_string(vocab) +
                          ").",
                      "Set model.vocab_size to 0 to take the tokenizer's.");
    }
    if (corpus_.train.size() < static_cast<size_t>(config_.train.seq_len) + 2) {
      throw UserError("The training data has only " + std::to_string(corpus_.train.size()) +
                          " tokens, fewer than one window of train.seq_len " +
                          std::to_string(config_.train.seq_len) + ".",
                      "Use a larger corpus or a shorter seq_len.");
    }
    total_steps_ = config_.train.resolved_steps();
  }

  TrainResult run_guarded() {
    TrainResult r;
    r.run_id = run_id_;
    try {
      r = train_loop();
    } catch (const std::exception& e) {
      std::string message = e.what();
      int code = kExitFailure;
      if (is_out_of_memory(e)) {
        message = "Out of memory on " + describe_device(device_) + " (batch_size " +
                  std::to_string(config_.train.batch_size) + ", seq_len " +
                  std::to_string(config_.train.seq_len) +
                  "). Lower train.batch_size (raise train.grad_accum to keep the tokens per step) "
                  "or use a smaller model.";
        code = kExitNoResource;
      } else if (const auto* ue = dynamic_cast<const UserError*>(&e)) {
        code = ue->code();
      }
      finish_metrics_safely();
      if (!store_failure(message)) {
        message += " The run could not be marked failed in " + store_->path().string() +
                   " either, so it shows as lost once its heartbeat is stale.";
      }
      sink_->emit("status", {{"status", "failed"},
                             {"step", state_.step},
                             {"total_steps", total_steps_},
                             {"message", message},
                             {"wall", state_.wall}});
      r.run_id = run_id_;
      r.status = "failed";
      r.exit_code = code;
      r.error = message;
    }
    return r;
  }

  // Writes the pending points, or drops them when that fails: a full disk refuses them again on
  // every try, and the failed status is what must still get through.
  void finish_metrics_safely() {
    try {
      if (metrics_) metrics_->flush();
    } catch (const std::exception&) {
      metrics_->discard();
    }
  }

  // Stores the failure; false when even that was refused (the database is what failed).
  bool store_failure(const std::string& message) {
    try {
      store_->set_status(run_id_, RunStatus::kFailed, message);
    } catch (const std::exception&) {
      return false;
    }
    try {
      store_->add_event(run_id_, "status",
                        nlohmann::json{{"status", "failed"}, {"message", message}}.dump(),
                        state_.step, state_.wall);
    } catch (const std::exception&) {
      // The stored status already says it; the event only repeats it for the timeline.
    }
    return true;
  }

  void log(const std::string& level, const std::string& message) {
    sink_->emit("log", {{"level", level}, {"message", message}, {"wall", state_.wall}});
  }

  TrainResult train_loop() {
    const TrainConfig& t = config_.train;
    ops::ScopedOpsChoice ops_scope(ops_choice_of(t.ops));
    ops::clear_used_implementations();  // a previous run of this process used other ops
    bool ops_recorded = false;
    torch::manual_seed(static_cast<uint64_t>(config_.seed));
    model_ = LanguageModel(config_.model);
    model_->to(device_);
    optimizer_ = make_optimizer(model_, t);
    data::WindowSampler sampler(corpus_.train, t.seq_len, t.batch_size,
                                data::parse_sampling_mode(config_.data.sampling),
                                static_cast<uint64_t>(config_.seed));
    sampler_ = &sampler;
    auto val = data::validation_batches(corpus_.val.empty() ? corpus_.train : corpus_.val,
                                        t.seq_len, t.batch_size, t.eval_batches);
    DebiasedEma ema(t.ema_alpha);

    if (!resume_from_.empty()) {
      state_ = load_checkpoint(resume_from_, model_, optimizer_.get());
      sampler.restore(state_.data_state);
      ema.restore(state_.ema_raw, state_.ema_count);
      log("info",
          "Resuming from " + resume_from_.string() + " at step " + std::to_string(state_.step));
    }
    store_->truncate_after(run_id_, state_.step);
    state_.tokenizer_kind = corpus_.tokenizer->spec().kind;
    state_.tokenizer_path = corpus_.tokenizer->spec().path.string();

    const ParamCounts counts = count_params(config_.model);
    store::RunStart start;
    start.pid = ::getpid();
    start.host = store::current_host();
    start.device = describe_device(device_);
    start.torch_version = compat::torch_version();
    start.cuda_version = device_.is_cuda() ? "cuda" : "";
    start.params_total = counts.total;
    start.params_active = counts.active;
    start.params_nonembed = counts.nonembed;
    store_->mark_started(run_id_, start);
    sink_->set_run(run_id_);
    sink_->emit("status", {{"status", "running"},
                           {"step", state_.step},
                           {"total_steps", total_steps_},
                           {"name", config_.name},
                           {"db", store_->path().string()},
                           {"wall", state_.wall},
                           {"device", start.device}});
    metrics_ = std::make_unique<store::MetricBuffer>(*store_, run_id_);
    // The loss a context-free model reaches on this data: the bar the curves must get below.
    metrics_->add("unigram_entropy", 0, 0, 0.0, unigram_entropy(corpus_.train));

    const bool autocast = device_.is_cuda() && t.dtype == "bf16";
    const int cuda_index = device_.is_cuda() ? device_.index() : 0;
    if (device_.is_cuda()) compat::cuda_reset_peak(cuda_index);
    auto moe = model_->moe_layers();
    std::vector<torch::Tensor> load_counts(moe.size());  // expert tokens since the last eval
    const double wall0 = state_.wall;
    const auto session_start = Clock::now();
    auto last_heartbeat = Clock::now();
    std::vector<int32_t> host_batch(static_cast<size_t>(t.batch_size) * (t.seq_len + 1));
    bool evaluated_last = false, checkpointed_last = false;

    while (state_.step < total_steps_) {
      const auto step_start = Clock::now();
      const int64_t step = state_.step + 1;
      const double lr = learning_rate(t, step, total_steps_);
      for (auto& group : optimizer_->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      model_->train();
      optimizer_->zero_grad();
      // Summed on the device and read once per step: a host read per micro-batch and MoE layer
      // would stall the GPU each time.
      torch::Tensor loss_sum, aux_sum;
      int64_t dropped = 0, routed = 0;
      for (int micro = 0; micro < t.grad_accum; ++micro) {
        sampler.next_batch(host_batch.data());
        auto batch = torch::from_blob(host_batch.data(), {t.batch_size, t.seq_len + 1}, torch::kInt)
                         .to(device_, torch::kLong);  // (B, L+1)
        auto inputs = batch.narrow(1, 0, t.seq_len), targets = batch.narrow(1, 1, t.seq_len);
        LmOutput out;
        torch::Tensor loss;
        {
          compat::CudaAutocast scope(autocast);
          out = model_->forward(inputs);
          loss = lm_loss(out.logits, targets);
        }
        ((loss + out.aux_loss) / t.grad_accum).backward();
        loss_sum = loss_sum.defined() ? loss_sum + loss.detach() : loss.detach();
        aux_sum = aux_sum.defined() ? aux_sum + out.aux_loss.detach() : out.aux_loss.detach();
        for (size_t i = 0; i < moe.size(); ++i) {
          const auto& st = moe[i]->last_stats();
          dropped += st.dropped;
          routed += st.tokens;
          load_counts[i] =
              load_counts[i].defined() ? load_counts[i] + st.expert_tokens : st.expert_tokens;
        }
      }
      const double loss = loss_sum.item<double>() / t.grad_accum;
      const double aux = aux_sum.item<double>() / t.grad_accum;
      if (!std::isfinite(loss)) return diverged(step, loss);
      const double max_norm =
          t.grad_clip > 0 ? t.grad_clip : std::numeric_limits<double>::infinity();
      const double grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
      optimizer_->step();

      state_.step = step;
      state_.tokens += t.tokens_per_step();
      if (!ops_recorded) {
        record_ops_used();
        ops_recorded = true;
      }
      const double step_time = since(step_start);
      state_.wall = wall0 + since(session_start);
      const double smooth = ema.update(loss);
      state_.ema_raw = ema.raw();
      state_.ema_count = ema.count();

      if (step % t.log_every == 0 || step == total_steps_) {
        nlohmann::json m = {{"loss", loss},
                            {"loss_smooth", smooth},
                            {"lr", lr},
                            {"grad_norm", grad_norm},
                            {"tokens_per_s", static_cast<double>(t.tokens_per_step()) / step_time},
                            {"step_time", step_time}};
        if (!moe.empty()) {
          m["aux_loss"] = aux;
          m["dropped_frac"] =
              routed > 0 ? static_cast<double>(dropped) / static_cast<double>(routed) : 0.0;
        }
        if (device_.is_cuda()) {
          m["peak_mem_gb"] = static_cast<double>(compat::cuda_peak_allocated(cuda_index)) / 1e9;
        }
        record(m);
        sink_->emit("step", {{"step", step},
                             {"tokens", state_.tokens},
                             {"total_steps", total_steps_},
                             {"metrics", m},
                             {"wall", state_.wall}});
      }
      evaluated_last = t.eval_every > 0 && step % t.eval_every == 0;
      if (evaluated_last) evaluate(val, load_counts);
      checkpointed_last = t.checkpoint_every > 0 && step % t.checkpoint_every == 0;
      if (checkpointed_last) checkpoint();
      if (since(last_heartbeat) > 2.0) {
        metrics_->flush();
        store_->heartbeat(run_id_, state_.step, state_.tokens);
        last_heartbeat = Clock::now();
      }
      if (g_stop.load() && state_.step < total_steps_) return stopped(checkpointed_last);
    }
    if (!evaluated_last) evaluate(val, load_counts);
    if (!checkpointed_last) checkpoint();
    metrics_->flush();
    store_->heartbeat(run_id_, state_.step, state_.tokens);
    store_->set_status(run_id_, RunStatus::kFinished);
    sink_->emit("status", {{"status", "finished"},
                           {"step", state_.step},
                           {"total_steps", total_steps_},
                           {"wall", state_.wall}});
    TrainResult r;
    r.run_id = run_id_;
    r.status = "finished";
    r.final_loss_smooth = ema.value();
    r.final_val_loss = last_val_loss_;
    return r;
  }

  // What train.ops resolved to on this run's shapes, from the first step's calls.
  void record_ops_used() {
    const auto used = ops::used_implementations();
    store_->set_ops_used(run_id_, nlohmann::json(used).dump());
    if (!used.empty()) log("info", "Ops: " + describe_ops(used));
  }

  void record(const nlohmann::json& metrics) {
    for (auto it = metrics.begin(); it != metrics.end(); ++it) {
      metrics_->add(it.key(), state_.step, state_.tokens, state_.wall, it.value().get<double>());
    }
  }

  void evaluate(const std::vector<std::vector<int32_t>>& val,
                std::vector<torch::Tensor>& load_counts) {
    const TrainConfig& t = config_.train;
    model_->eval();
    torch::NoGradGuard no_grad;
    double total = 0;
    for (const auto& b : val) {
      auto batch =
          torch::from_blob(const_cast<int32_t*>(b.data()),
                           {static_cast<int64_t>(b.size()) / (t.seq_len + 1), t.seq_len + 1},
                           torch::kInt)
              .to(device_, torch::kLong);
      compat::CudaAutocast scope(device_.is_cuda() && t.dtype == "bf16");
      auto out = model_->forward(batch.narrow(1, 0, t.seq_len));
      total += lm_loss(out.logits, batch.narrow(1, 1, t.seq_len)).item<double>();
    }
    last_val_loss_ = val.empty() ? NAN : total / static_cast<double>(val.size());
    nlohmann::json m = {{"val_loss", last_val_loss_}, {"val_ppl", std::exp(last_val_loss_)}};
    record(m);
    // Expert load since the previous evaluation, one metric per (layer, expert).
    for (size_t i = 0; i < load_counts.size(); ++i) {
      if (!load_counts[i].defined()) continue;
      auto counts = load_counts[i].to(torch::kCPU);  // the one host read per evaluation
      auto frac = counts.to(torch::kDouble) / std::max<int64_t>(1, counts.sum().item<int64_t>());
      for (int64_t e = 0; e < frac.size(0); ++e) {
        metrics_->add("expert_load/" + std::to_string(i) + "/" + std::to_string(e), state_.step,
                      state_.tokens, state_.wall, frac[e].item<double>());
      }
      load_counts[i] = torch::Tensor();
    }
    store_->add_event(run_id_, "eval", nlohmann::json{{"metrics", m}}.dump(), state_.step,
                      state_.wall);
    sink_->emit(
        "eval",
        {{"step", state_.step}, {"tokens", state_.tokens}, {"metrics", m}, {"wall", state_.wall}});
  }

  fs::path checkpoint_dir() const {
    fs::path root =
        options_.checkpoint_root.empty() ? data_home() / "checkpoints" : options_.checkpoint_root;
    return root / store_->get_run(run_id_).uuid;
  }

  void checkpoint() {
    char name[64];
    std::snprintf(name, sizeof name, "step-%08lld.pt", static_cast<long long>(state_.step));
    const fs::path path = checkpoint_dir() / name;
    // Every point up to this step is in the database before the checkpoint is: a resume from it
    // then continues a gap-free curve even after a SIGKILL lost the buffered points.
    metrics_->flush();
    state_.data_state = sampler_->state();  // the data position to continue from
    const SavedCheckpoint saved = save_checkpoint(path, config_, model_, optimizer_.get(), state_);
    const int64_t bytes = saved.bytes;
    store_->add_checkpoint(run_id_, state_.step, path.string(), bytes, saved.hash);
    // Keep the newest keep_checkpoints files.
    auto all = store_->list_checkpoints(run_id_);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
    for (size_t i = static_cast<size_t>(config_.train.keep_checkpoints); i < all.size(); ++i) {
      std::error_code ec;
      fs::remove(all[i].path, ec);
      store_->delete_checkpoint_row(all[i].id);
    }
    sink_->emit(
        "checkpoint",
        {{"step", state_.step}, {"path", path.string()}, {"bytes", bytes}, {"wall", state_.wall}});
  }

  TrainResult stopped(bool checkpointed) {
    if (!checkpointed) checkpoint();
    metrics_->flush();
    store_->heartbeat(run_id_, state_.step, state_.tokens);
    store_->set_status(run_id_, RunStatus::kStopped);
    sink_->emit("status", {{"status", "stopped"},
                           {"step", state_.step},
                           {"total_steps", total_steps_},
                           {"wall", state_.wall}});
    TrainResult r;
    r.run_id = run_id_;
    r.status = "stopped";
    return r;
  }

  TrainResult diverged(int64_t step, double loss) {
    const std::string message = "The loss became " + std::to_string(loss) + " at step " +
                                std::to_string(step) + "; the last good checkpoint is kept.";
    metrics_->flush();
    store_->set_status(run_id_, RunStatus::kDiverged, message);
    sink_->emit("status", {{"status", "diverged"},
                           {"step", step},
                           {"total_steps", total_steps_},
                           {"message", message + " Lower train.lr or raise warmup_frac."},
                           {"wall", state_.wall}});
    TrainResult r;
    r.run_id = run_id_;
    r.status = "diverged";
    r.exit_code = kExitDiverged;
    r.error = message;
    return r;
  }

  RunConfig config_;
  TrainerOptions options_;
  std::unique_ptr<ProgressSink> sink_;
  std::unique_ptr<store::ResultsStore> store_;
  std::unique_ptr<store::MetricBuffer> metrics_;
  torch::Device device_{torch::kCPU};
  data::TokenizedCorpus corpus_;
  int64_t total_steps_ = 0;
  int64_t run_id_ = 0;
  fs::path resume_from_;
  LanguageModel model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  TrainState state_;
  data::WindowSampler* sampler_ = nullptr;  // lives in train_loop()
  double last_val_loss_ = NAN;
};

}  // namespace

void request_stop() {
  g_stop.store(true);
}
bool stop_requested() {
  return g_stop.load();
}
void clear_stop_request() {
  g_stop.store(false);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

TrainResult train_new_run(const RunConfig& config, const TrainerOptions& options) {
  TrainingSession session(config, options);
  return session.start_new();
}

TrainResult resume_run(int64_t run_id, const TrainerOptions& options) {
  store::OpenOptions existing;
  existing.create = false;  // a run to resume lives in an existing database
  auto st = std::make_unique<store::ResultsStore>(options.db, existing);
  auto row = st->find_run(run_id);
  if (!row) {
    throw UserError(
        "There is no run " + std::to_string(run_id) + " in " + options.db.string() + ".",
        "List the runs with `mmlab runs list`.");
  }
  if (row->effective_status == RunStatus::kFinished) {
    throw UserError("Run " + std::to_string(run_id) + " (" + row->name + ") has already finished.",
                    "Start a new run to train longer.");
  }
  // A trainer killed a moment ago still has a fresh heartbeat; on this host its pid tells.
  const bool dead_here = row->host == store::current_host() && row->pid > 0 &&
                         ::kill(static_cast<pid_t>(row->pid), 0) != 0 && errno == ESRCH;
  if ((row->effective_status == RunStatus::kRunning && !dead_here) ||
      row->effective_status == RunStatus::kQueued) {
    throw UserError("Run " + std::to_string(run_id) + " (" + row->name + ") is " +
                        std::string(store::to_string(row->effective_status)) + " (pid " +
                        std::to_string(row->pid) + " on " + row->host + ").",
                    "Stop it first, or wait until its heartbeat is stale and it shows as lost.");
  }
  RunConfig config = run_config_from_json(nlohmann::json::parse(row->config_json));
  TrainingSession session(config, options);
  return session.resume(run_id, std::move(st));
}

}  // namespace mmlab
