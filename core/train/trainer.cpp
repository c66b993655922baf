// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/config/param_count.h"
#include "core/data/corpus.h"
#include "core/data/sampler.h"
#include "core/models/language_model.h"
#include "core/models/op_choice.h"
#include "core/ops/torch_compat.h"
#include "core/results/ema.h"
#include "core/results/metric_names.h"
#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "core/train/device.h"
#include "core/train/failure.h"
#include "core/train/fault_point.h"
#include "core/train/fused_adamw.h"
#include "core/train/grad_clip.h"
#include "core/train/gradient_reducer.h"
#include "core/train/memory_advice.h"
#include "core/train/progress.h"
#include "core/train/rank_group.h"
#include "core/train/run_recorder.h"
#include "core/train/schedule.h"
#include "core/util/build_info.h"
#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

namespace mmlab {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  g_stop.store(true);
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
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

// Builds AdamW (fused on a GPU) with weight decay on everything (the paper's code) or, with
// no_decay_groups, none on norms, biases, A_log and D.
std::unique_ptr<torch::optim::AdamW> make_optimizer(LanguageModel& model, const TrainConfig& t) {
  auto opts = torch::optim::AdamWOptions(t.lr)
                  .betas({t.beta1, t.beta2})
                  .eps(t.adam_eps)
                  .weight_decay(t.weight_decay);
  if (!t.no_decay_groups) return std::make_unique<FusedAdamW>(model->parameters(), opts);
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
  return std::make_unique<FusedAdamW>(std::move(groups), opts);
}

// Makes `dir` (and its parents) and proves it can hold a file, so that an unwritable checkpoint
// folder is said before step 1 instead of at the first checkpoint.
void require_writable_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw UserError(
        "The checkpoint folder " + dir.string() + " cannot be created: " + ec.message() + ".",
        "Give a writable folder with --checkpoint-dir.");
  }
  const fs::path probe = dir / (".write-test." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw UserError(
        "The checkpoint folder " + dir.string() + " is not writable: " + std::strerror(err) + ".",
        "Give a writable folder with --checkpoint-dir.");
  }
  ::close(fd);
  fs::remove(probe, ec);
}

fs::path absolute_path(const fs::path& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  return (ec ? p : a).lexically_normal();
}

// The event that records a run's checkpoint folder (payload {"path": ...}, no step, so a resume's
// truncation never removes it).
constexpr char kCheckpointDirEvent[] = "checkpoint_dir";

// How long rank 0 waits for the other ranks to prepare a run's data: a first tokenization of a
// large corpus on a host whose cache is empty takes minutes.
constexpr std::chrono::seconds kPrepareTimeout{3600};

// The rendezvous keys of a data-parallel command's session `k`: rank 0 posts "run" (what to
// train, or skip/end), each other rank "prepared/R" (empty, or why it cannot), rank 0 "go"
// (empty, or why the session is off), a rank that failed "failed/R" with its message.
std::string session_key(int session, const std::string& what) {
  return "session/" + std::to_string(session) + "/" + what;
}

std::string read_file_bytes(const fs::path& path) {
  std::string bytes;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    throw UserError(
        "Cannot read the checkpoint " + path.string() + ": " + std::strerror(errno) + ".",
        "Check that it exists and is readable.");
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

class TrainingSession {
 public:
  TrainingSession(RunConfig config, const TrainerOptions& options)
      : config_(std::move(config)),
        options_(options),
        sink_(make_progress_sink(options.progress)),
        recorder_(*sink_) {
    sink_->set_experiment_position(options.run_index, options.run_count);
    ranks_ = options.ranks;
    if (ranks_) {
      rank_ = ranks_->env().rank;
      world_ = ranks_->env().world_size;
      records_ = rank_ == 0;
    }
  }

  // A rank other than 0 of a data-parallel command: session `session` of rank 0, which posted
  // `from_checkpoint` (whether its state comes from a checkpoint).
  TrainResult follow(int session, bool from_checkpoint) {
    session_ = session;
    from_checkpoint_ = from_checkpoint;
    std::string problem;
    try {
      prepare();
      build();
    } catch (const std::exception& e) {
      problem = describe_failure(e, doing_);
    }
    ranks_->post(session_key(session_, "prepared/" + std::to_string(rank_)), problem);
    const std::string go = ranks_->await(session_key(session_, "go"));
    if (!problem.empty() || !go.empty()) {
      TrainResult r;
      r.status = RunStatus::kFailed;
      r.exit_code = kExitFailure;
      r.error = problem;  // rank 0 reports the session's end itself
      return r;
    }
    return run_guarded();
  }

  // New run: everything that can fail on user input happens before the run row exists.
  TrainResult start_new() {
    prepare();
    build();
    const fs::path root = absolute_path(
        options_.checkpoint_root.empty() ? data_home() / "checkpoints" : options_.checkpoint_root);
    require_writable_folder(root);
    store::ResultsStore results(options_.db);
    store::NewRun nr;
    nr.experiment_id =
        results.ensure_experiment(options_.experiment_name, options_.experiment_spec);
    nr.name = config_.name;
    nr.family = config_.model.family;
    nr.config_json = to_json(config_).dump();
    nr.seed = config_.seed;
    nr.total_steps = total_steps_;
    nr.git_rev = std::string(git_revision());
    nr.status = RunStatus::kRunning;
    // From here on the run's writer is this session's only handle on the database.
    own_run(results.writer(results.create_run(nr)));
    fault_point("run-created");  // the moment between a run's row and its process's pid
    checkpoint_dir_ = root / writer_->row().uuid;
    start();
    return run_guarded();
  }

  // A queued run (its row written when the experiment was launched): taken for this process
  // first, so a refusal while preparing (a missing corpus, an unwritable folder) is kept in its
  // row as `failed` with the message instead of leaving it queued without a word.
  TrainResult start_queued(const store::RunRow& row, store::RunWriter writer) {
    own_run(std::move(writer));
    const std::string run = "Run " + std::to_string(row.id) + " (" + row.name + ")";
    fault_point("run-created");  // the run's row exists, without a pid
    if (!writer_->claim_queued(::getpid(), store::current_host())) {
      throw UserError(run + " was started by another process meanwhile.",
                      "Follow it with `mmlab runs show " + std::to_string(row.id) + "`.");
    }
    fs::path root;
    try {
      prepare();
      build();
      root = absolute_path(options_.checkpoint_root.empty() ? data_home() / "checkpoints"
                                                            : options_.checkpoint_root);
      require_writable_folder(root);
    } catch (const std::exception& e) {
      recorder_.record_failure(position(), describe_failure(e, doing_));
      throw;
    }
    writer_->record_start_config(to_json(config_).dump(), total_steps_,
                                 std::string(git_revision()));
    checkpoint_dir_ = root / row.uuid;
    start();
    return run_guarded();
  }

  TrainResult resume(const store::RunRow& row, store::RunWriter writer, const ResumeOptions& how) {
    own_run(std::move(writer));
    prepare();
    checkpoint_dir_ = options_.checkpoint_root.empty()
                          ? remembered_checkpoint_dir(row)
                          : absolute_path(options_.checkpoint_root) / row.uuid;
    require_writable_folder(checkpoint_dir_);
    choose_origin(row, how);
    build();
    if (!origin_.empty()) load_origin();
    // Nothing of the run has changed up to here: every refusal above leaves it as it was.
    remove_stray_files();
    start();
    return run_guarded();
  }

 private:
  void prepare() {
    check_ops_choice(config_);
    doing_ = "preparing the data";
    if (ranks_) check_batch_divides(config_, world_);
    if (ranks_ && config_.train.threads == 0) {
      // The host's cores are shared by its ranks.
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      set_cpu_threads(std::max(1, cores / std::max(1, ranks_->env().local_world_size)));
    } else {
      set_cpu_threads(config_.train.threads);
    }
    device_ = resolve_device(config_.train.device);
    if (ranks_ && device_.is_cuda()) device_ = rank_gpu();
    log("info", "Preparing data (" + config_.data.source + ", " + config_.data.tokenizer + ")");
    corpus_ = data::prepare_corpus(config_.data, [&](double f) {
      ProgressEvent e;
      e.kind = EventKind::kLog;
      e.level = "info";
      e.message = "tokenizing";
      e.fraction = f;
      sink_->emit(std::move(e));
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
    fault_point("prepared");
  }

  // The model, optimizer and data order of step 0 (a resume then loads its checkpoint over them).
  void build() {
    doing_ = "building the model";
    const TrainConfig& t = config_.train;
    torch::manual_seed(static_cast<uint64_t>(config_.seed));
    model_ = LanguageModel(config_.model);
    if (device_.is_cuda()) memory_.free_bytes = compat::cuda_free_and_total(device_.index()).first;
    model_->to(device_);
    optimizer_ = make_optimizer(model_, t);
    sampler_ = std::make_unique<data::WindowSampler>(
        corpus_.train, t.seq_len, t.batch_size, data::parse_sampling_mode(config_.data.sampling),
        static_cast<uint64_t>(config_.seed));
    val_ = data::validation_batches(corpus_.val.empty() ? corpus_.train : corpus_.val, t.seq_len,
                                    t.batch_size, t.eval_batches);
    expert_load_.assign(model_->moe_layers().size(), torch::Tensor());
  }

  // The folder the run used before: recorded at its last start, else that of its newest
  // checkpoint (runs from before the folder was recorded), else the default.
  fs::path remembered_checkpoint_dir(const store::RunRow& row) {
    fs::path dir;
    for (const auto& e : writer_->events()) {
      if (e.kind != kCheckpointDirEvent) continue;
      try {
        dir = nlohmann::json::parse(e.payload_json).value("path", "");
      } catch (const nlohmann::json::exception&) {
      }
    }
    if (dir.empty()) {
      auto latest = writer_->latest_checkpoint();
      if (latest && fs::path(latest->path).is_absolute())
        dir = fs::path(latest->path).parent_path();
    }
    return dir.empty() ? absolute_path(data_home() / "checkpoints" / row.uuid) : dir;
  }

  // Picks the checkpoint to continue from; refuses (before anything changes) when it is not
  // there or not what was written. A run without any checkpoint starts again from step 0.
  void choose_origin(const store::RunRow& row, const ResumeOptions& how) {
    const std::string run = "run " + std::to_string(row.id) + " (" + row.name + ")";
    const std::string choices =
        "Resume from its newest intact checkpoint with --resume-from latest-valid, from a file "
        "with --checkpoint FILE, or start it again from step 0 with --restart.";
    auto rows = writer_->checkpoints();  // oldest first
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return a.step != b.step ? a.step > b.step : a.id > b.id;
    });
    // Paths are stored absolute; a relative one (older runs) can only mean the current folder.
    for (auto& r : rows) r.path = absolute_path(r.path).string();
    switch (how.from) {
      case ResumeFrom::kRestart:
        notice("Restarting " + run + " from step 0: its curve and checkpoints are discarded.");
        return;
      case ResumeFrom::kFile: {
        const fs::path file = absolute_path(how.checkpoint);
        std::error_code ec;
        if (!fs::is_regular_file(file, ec)) {
          throw UserError("The checkpoint " + file.string() +
                              " given with --checkpoint does not "
                              "exist.",
                          "Check the path; `mmlab runs show " + std::to_string(row.id) +
                              "` lists the run's checkpoints.");
        }
        for (const auto& r : rows) {
          if (fs::path(r.path) != file) continue;
          if (auto problem = checkpoint_problem(file, r.bytes, r.hash)) {
            throw UserError(*problem, "Give another checkpoint of " + run + ".");
          }
        }
        origin_ = file;
        return;
      }
      case ResumeFrom::kLatest:
      case ResumeFrom::kLatestValid:
        break;
    }
    if (rows.empty()) {
      notice(run + " has no checkpoint yet; it starts again from step 0.");
      return;
    }
    if (how.from == ResumeFrom::kLatest) {
      if (auto problem =
              checkpoint_problem(rows.front().path, rows.front().bytes, rows.front().hash)) {
        throw UserError(*problem + " It is the newest checkpoint of " + run + ".", choices);
      }
      origin_ = rows.front().path;
      return;
    }
    for (const auto& r : rows) {
      if (auto problem = checkpoint_problem(r.path, r.bytes, r.hash)) {
        notice(*problem + " Skipping it.");
        continue;
      }
      origin_ = r.path;
      notice("Resuming " + run + " from its newest intact checkpoint, step " +
             std::to_string(r.step) + " (" + r.path + ").");
      return;
    }
    throw UserError(
        "None of the " + std::to_string(rows.size()) + " checkpoints of " + run + " is intact.",
        "Start it again from step 0 with --restart, or give a file with --checkpoint.");
  }

  void load_origin() {
    doing_ = "loading the checkpoint " + origin_.string();
    try {
      state_ = load_checkpoint(origin_, model_, optimizer_.get());
    } catch (const UserError&) {
      throw;
    } catch (const std::exception& e) {
      // Intact bytes that still do not load: not a checkpoint of this run's shape.
      throw UserError("The checkpoint " + origin_.string() + " cannot be loaded into this run.",
                      "Give a checkpoint written by this run, or start it again with --restart.");
    }
    sampler_->restore(state_.data_state);
    for (size_t i = 0; i < expert_load_.size() && i < state_.expert_load.size(); ++i) {
      if (state_.expert_load[i].defined()) expert_load_[i] = state_.expert_load[i].to(device_);
    }
    resumed_at_checkpoint_ = true;
    log("info", "Resuming from " + origin_.string() + " at step " + std::to_string(state_.step));
  }

  // A kill during a checkpoint write leaves its temporary file; one between a checkpoint's file
  // and its row (or between forgetting an old checkpoint and deleting its file) leaves a file no
  // row names. The run's next start removes both from the run's own folder.
  void remove_stray_files() {
    std::vector<fs::path> named;
    for (const auto& r : writer_->checkpoints()) named.push_back(absolute_path(r.path));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(checkpoint_dir_, ec)) {
      const std::string name = e.path().filename().string();
      const bool temporary = is_temporary_file(e.path());
      const bool checkpoint = name.rfind("step-", 0) == 0 && e.path().extension() == ".pt";
      const fs::path p = absolute_path(e.path());
      const bool known = p == origin_ || std::find(named.begin(), named.end(), p) != named.end();
      if (temporary || (checkpoint && !known)) fs::remove(e.path(), ec);
    }
  }

  // Records this process as the run's trainer, and the run's checkpoint folder.
  void start() {
    doing_ = "starting the run";
    const ParamCounts counts = count_params(config_.model);
    store::RunStart start;
    start.pid = ::getpid();
    start.host = store::current_host();
    start.device = describe_device(device_);
    if (world_ > 1) start.device += " x " + std::to_string(world_) + " ranks";
    start.torch_version = compat::torch_version();
    start.cuda_version = device_.is_cuda() ? compat::cuda_version() : "";
    start.params_total = counts.total;
    start.params_active = counts.active;
    start.params_nonembed = counts.nonembed;
    writer_->mark_started(start);
    device_text_ = start.device;
    std::string remembered;
    for (const auto& e : writer_->events()) {
      if (e.kind == kCheckpointDirEvent) remembered = e.payload_json;
    }
    const std::string payload = nlohmann::json{{"path", checkpoint_dir_.string()}}.dump();
    if (remembered != payload) writer_->add_event(kCheckpointDirEvent, payload);
  }

  // The GPU of this rank: cuda:LOCAL_RANK.
  torch::Device rank_gpu() const {
    const int local = ranks_->env().local_rank;
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (local >= count) {
      throw ResourceError("Rank " + std::to_string(rank_) + " has the local rank " +
                              std::to_string(local) + " but this host has " +
                              std::to_string(count) + " GPUs.",
                          "Start at most one rank per GPU on each host.");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local));
  }

  // Brings the ranks of a data-parallel command together for this run: rank 0 says what is
  // trained and waits until every rank has prepared it, then all open the run's process group
  // and start from rank 0's state (its checkpoint's bytes, then its weights).
  void join_ranks() {
    if (!ranks_) return;
    doing_ = "joining the other ranks";
    if (records_) {
      session_ = ranks_->next_session();
      from_checkpoint_ = !origin_.empty();
      ranks_->post(
          session_key(session_, "run"),
          nlohmann::json{{"config", to_json(config_)}, {"checkpoint", from_checkpoint_}}.dump());
      std::string problem;
      for (int r = 1; r < world_; ++r) {
        const std::string p =
            ranks_->await(session_key(session_, "prepared/" + std::to_string(r)), kPrepareTimeout);
        if (!p.empty() && problem.empty()) {
          problem = "Rank " + std::to_string(r) + " could not start the run: " + p;
        }
      }
      ranks_->post(session_key(session_, "go"), problem);
      if (!problem.empty()) throw UserError(problem);
    }
    group_ = ranks_->open_group(session_key(session_, "group"), device_,
                                std::chrono::seconds(options_.rank_timeout_s));
    if (from_checkpoint_) {
      doing_ = "sending the checkpoint to the other ranks";
      const std::string bytes = group_->broadcast_bytes(records_ ? read_file_bytes(origin_) : "",
                                                        "sending the checkpoint");
      if (!records_) {
        state_ = load_checkpoint_bytes(bytes, "of rank 0", model_, optimizer_.get());
        sampler_->restore(state_.data_state);
        for (size_t i = 0; i < expert_load_.size() && i < state_.expert_load.size(); ++i) {
          if (state_.expert_load[i].defined()) expert_load_[i] = state_.expert_load[i].to(device_);
        }
        resumed_at_checkpoint_ = true;
      }
    }
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model_->parameters()) group_->broadcast(p.detach(), "sending the weights");
    }
    reducer_ = std::make_unique<GradientReducer>(model_->parameters(), *group_);
  }

  // This process trains the run of `writer`: its life is recorded there (by rank 0 alone).
  void own_run(store::RunWriter writer) {
    writer_ = std::make_unique<store::RunWriter>(std::move(writer));
    if (records_) recorder_.record_into(*writer_);
  }

  // Where the run stands now, at `step` (default: the last step trained).
  RunPosition position(std::optional<int64_t> step = std::nullopt) const {
    return {step.value_or(state_.step), state_.tokens, state_.wall, total_steps_};
  }

  static std::vector<std::pair<std::string, double>> metric_list(const nlohmann::json& metrics) {
    std::vector<std::pair<std::string, double>> out;
    for (auto it = metrics.begin(); it != metrics.end(); ++it)
      out.emplace_back(it.key(), it->get<double>());
    return out;
  }

  TrainResult run_guarded() {
    TrainResult r;
    r.run_id = writer_ ? writer_->run_id() : 0;
    try {
      join_ranks();
      r = train_loop();
    } catch (const std::exception& e) {
      std::string message = describe_failure(e, doing_);
      int code = kExitFailure;
      if (ranks_ && dynamic_cast<const RankLostError*>(&e) != nullptr) {
        if (records_) message = failed_rank_message().value_or(message);
        ranks_->mark_lost();
        // The engine may still wait on the lost peer: never destroyed (see RankGroup::abandon).
        if (group_) group_->abandon();
      }
      if (const auto* ue = dynamic_cast<const UserError*>(&e)) code = ue->code();
      if (debug_enabled()) std::fprintf(stderr, "mmlab: details: %s\n", e.what());
      r = is_out_of_memory(e) ? recorder_.out_of_memory(position(), describe_device(device_),
                                                        memory_at_failure(e), config_.train)
                              : recorder_.failed(position(), message, code);
      if (!records_) tell_rank0_failure(r.error);
    }
    return r;
  }

  // What the allocator and the driver say after an out-of-memory error, for the advice.
  MemoryAtFailure memory_at_failure(const std::exception& e) const {
    MemoryAtFailure m = memory_;
    if (!device_.is_cuda()) return m;
    m.peak_bytes = compat::cuda_peak_allocated(device_.index());
    m.requested_bytes = requested_bytes_in(e.what());
    m.total_bytes = compat::cuda_free_and_total(device_.index()).second;
    if (model_) {
      for (const auto& p : model_->parameters()) m.weight_bytes += p.numel() * p.element_size();
    }
    return m;
  }

  // A rank other than 0 whose run failed says why to rank 0, which stores it (rank 0 itself only
  // sees that a rank left).
  void tell_rank0_failure(const std::string& message) {
    if (session_ < 0) return;
    try {
      ranks_->post(session_key(session_, "failed/" + std::to_string(rank_)), message);
    } catch (const RankLostError&) {
      // Rank 0 is gone: nobody to tell.
    }
  }

  // Rank 0: the message of a rank that said why it failed, as the run's error.
  std::optional<std::string> failed_rank_message() {
    if (session_ < 0) return std::nullopt;
    for (int r = 1; r < world_; ++r) {
      if (auto m = ranks_->peek(session_key(session_, "failed/" + std::to_string(r)))) {
        return "Rank " + std::to_string(r) + " of " + std::to_string(world_) + " failed: " + *m;
      }
    }
    return std::nullopt;
  }

  void log(const std::string& level, const std::string& message) {
    ProgressEvent e;
    e.kind = EventKind::kLog;
    e.level = level;
    e.message = message;
    e.wall = state_.wall;
    sink_->emit(std::move(e));
  }

  // A note the user must see whatever the progress mode (a fallback, a restart): on stderr, and
  // as a log event for the studio.
  void notice(const std::string& message) {
    if (options_.progress != "bar") std::fprintf(stderr, "mmlab: %s\n", message.c_str());
    log("warning", message);
  }

  // Checkpoint rows after the step a resume continues from belong to a continuation that is
  // being replaced (a damaged newest one, or an explicit --checkpoint/--restart): forgotten, and
  // their files removed, except the file being resumed from.
  void drop_checkpoints_after(int64_t step) {
    for (const auto& r : writer_->checkpoints()) {
      if (r.step <= step) continue;
      writer_->delete_checkpoint_row(r.id);
      if (absolute_path(r.path) == origin_) continue;
      std::error_code ec;
      fs::remove(r.path, ec);
      log("info", "Removed the checkpoint " + r.path + " of the replaced continuation.");
    }
  }

  TrainResult train_loop() {
    const TrainConfig& t = config_.train;
    ops::ScopedOpsChoice ops_scope(t.ops);
    ops::clear_used_implementations();  // a previous run of this process used other ops
    bool ops_recorded = false;
    data::WindowSampler& sampler = *sampler_;
    DebiasedEma ema(t.ema_alpha);
    ema.restore(state_.ema_raw, static_cast<double>(state_.ema_count));
    if (records_) {
      doing_ = "discarding the points after step " + std::to_string(state_.step);
      writer_->truncate_after(state_.step);
      drop_checkpoints_after(state_.step);
    }
    state_.tokenizer_kind = corpus_.tokenizer->spec().kind;
    state_.tokenizer_path = corpus_.tokenizer->spec().path.string();

    if (records_) {
      sink_->set_run(writer_->run_id());
      recorder_.started(position(), config_.name, device_text_);
      metrics_ = std::make_unique<store::MetricBuffer>(*writer_);
      recorder_.buffer_points(*metrics_);
      // The loss a context-free model reaches on this data: the bar the curves must get below.
      metrics_->add(metric::kUnigramEntropy, 0, 0, 0.0, unigram_entropy(corpus_.train));
    }

    const bool autocast = device_.is_cuda() && t.dtype == "bf16";
    const int cuda_index = device_.is_cuda() ? device_.index() : 0;
    if (device_.is_cuda()) compat::cuda_reset_peak(cuda_index);
    auto moe = model_->moe_layers();
    const double wall0 = state_.wall;
    const auto session_start = Clock::now();
    // When this session's training clock starts, in Unix time: with it every point of the
    // session has an exact wall-clock time (a resumed run's later points are not shifted back
    // by the time it spent stopped). Only the rank that records writes it.
    if (records_)
      writer_->add_event(
          store::kSessionEvent,
          nlohmann::json{{"wall", wall0},
                         {"started_at", std::chrono::duration<double>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count()}}
              .dump(),
          state_.step, wall0);
    // The global batch (every rank draws it, so the data order is that of one process); this
    // rank trains its contiguous shard of `shard` rows.
    std::vector<int32_t> host_batch(static_cast<size_t>(t.batch_size) * (t.seq_len + 1));
    const int64_t shard = t.batch_size / world_;
    const int32_t* shard_rows =
        host_batch.data() + static_cast<size_t>(rank_ * shard) * (t.seq_len + 1);
    // A resume continues from a written checkpoint: writing it again at the same step would
    // replace (and keep-last-k could then delete) the only one there is.
    bool evaluated_last = false, checkpointed_last = resumed_at_checkpoint_;

    while (state_.step < total_steps_) {
      const auto step_start = Clock::now();
      const int64_t step = state_.step + 1;
      doing_ = "training step " + std::to_string(step);
      const double lr = learning_rate(t, step, total_steps_);
      for (auto& group : optimizer_->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      model_->train();
      optimizer_->zero_grad();
      // Summed on the device and read once per step: a host read per micro-batch and MoE layer
      // would stall the GPU each time.
      torch::Tensor loss_sum, aux_sum, dropped_sum;  // dropped_sum: () int64, MoE models only
      int64_t dropped = 0, routed = 0;
      // (X) tokens per expert of this step on this rank, per MoE layer (data parallel only).
      std::vector<torch::Tensor> step_load(world_ > 1 ? moe.size() : 0);
      for (int micro = 0; micro < t.grad_accum; ++micro) {
        sampler.next_batch(host_batch.data());
        auto batch =
            torch::from_blob(const_cast<int32_t*>(shard_rows), {shard, t.seq_len + 1}, torch::kInt)
                .to(device_, torch::kLong);  // (B / ranks, L+1)
        auto inputs = batch.narrow(1, 0, t.seq_len), targets = batch.narrow(1, 1, t.seq_len);
        LmHidden out;
        torch::Tensor loss;
        {
          compat::CudaAutocast scope(autocast);
          out = model_->forward_hidden(inputs);
          loss = model_->next_token_loss(out, targets);
        }
        if (reducer_ && micro == t.grad_accum - 1) reducer_->arm();
        ((loss + out.aux_loss) / t.grad_accum).backward();
        loss_sum = loss_sum.defined() ? loss_sum + loss.detach() : loss.detach();
        aux_sum = aux_sum.defined() ? aux_sum + out.aux_loss.detach() : out.aux_loss.detach();
        for (size_t i = 0; i < moe.size(); ++i) {
          const auto& st = moe[i]->last_stats();
          dropped_sum = dropped_sum.defined() ? dropped_sum + st.dropped : st.dropped;
          routed += st.tokens;
          torch::Tensor& load = world_ > 1 ? step_load[i] : expert_load_[i];
          load = load.defined() ? load + st.expert_tokens : st.expert_tokens;
        }
      }
      const double max_norm =
          t.grad_clip > 0 ? t.grad_clip : std::numeric_limits<double>::infinity();
      double loss = 0, aux = 0, tokens_per_s = 0, grad_norm = 0;
      bool stop_now = false;
      torch::Tensor grad_norm_on_device;
      if (reducer_) {
        reducer_->finish();
        dropped = dropped_sum.defined() ? dropped_sum.item<int64_t>() : 0;
        const StepTotals totals =
            sum_over_ranks(loss_sum, aux_sum, dropped, routed, step_load, since(step_start));
        loss = totals.loss / (world_ * t.grad_accum);
        aux = totals.aux / (world_ * t.grad_accum);
        dropped = totals.dropped;
        routed = totals.routed;
        tokens_per_s = totals.tokens_per_s;
        stop_now = totals.stop;
        if (!std::isfinite(loss)) return diverged(step, "The loss became " + std::to_string(loss));
        grad_norm_on_device = clip_grad_norm_on_device(model_->parameters(), max_norm);
        optimizer_->step();
        grad_norm = grad_norm_on_device.item<double>();
      } else {
        // Clipping and the update are queued before anything is read, then the step's figures
        // come back in one read of the device. A non-finite loss is seen after the update, which
        // is harmless: a diverged run keeps only its last checkpoint, never these weights.
        grad_norm_on_device = clip_grad_norm_on_device(model_->parameters(), max_norm);
        optimizer_->step();
        std::vector<torch::Tensor> figures = {loss_sum.to(torch::kDouble).reshape({1}),
                                              aux_sum.to(torch::kDouble).reshape({1}),
                                              grad_norm_on_device.to(torch::kDouble).reshape({1})};
        if (dropped_sum.defined()) figures.push_back(dropped_sum.to(torch::kDouble).reshape({1}));
        const torch::Tensor host = torch::cat(figures).to(torch::kCPU);
        const double* v = host.data_ptr<double>();
        loss = v[0] / t.grad_accum;
        aux = v[1] / t.grad_accum;
        grad_norm = v[2];
        if (dropped_sum.defined()) dropped = static_cast<int64_t>(v[3]);
        if (!std::isfinite(loss)) return diverged(step, "The loss became " + std::to_string(loss));
      }
      if (nan_fault_at(step)) {
        torch::NoGradGuard no_grad;
        model_->parameters().front().fill_(NAN);
      }

      state_.step = step;
      state_.tokens += t.tokens_per_step();
      if (!ops_recorded && records_) {
        record_ops_used();
        ops_recorded = true;
      }
      const double step_time = since(step_start);
      if (!reducer_) tokens_per_s = static_cast<double>(t.tokens_per_step()) / step_time;
      state_.wall = wall0 + since(session_start);
      const double smooth = ema.update(loss);
      state_.ema_raw = ema.raw();
      state_.ema_count = static_cast<int64_t>(ema.steps());

      if (records_ && (step % t.log_every == 0 || step == total_steps_)) {
        nlohmann::json m = {{metric::kLoss, loss},
                            {metric::kLossSmooth, smooth},
                            {metric::kLr, lr},
                            {metric::kGradNorm, grad_norm},
                            {metric::kTokensPerS, tokens_per_s},
                            {metric::kStepTime, step_time}};
        if (!moe.empty()) {
          m[metric::kAuxLoss] = aux;
          m[metric::kDroppedFrac] =
              routed > 0 ? static_cast<double>(dropped) / static_cast<double>(routed) : 0.0;
        }
        if (device_.is_cuda()) {
          m[metric::kPeakMemGb] =
              static_cast<double>(compat::cuda_peak_allocated(cuda_index)) / 1e9;
        }
        record(m);
        ProgressEvent e;
        e.kind = EventKind::kStep;
        e.step = step;
        e.tokens = state_.tokens;
        e.total_steps = total_steps_;
        e.metrics = metric_list(m);
        e.wall = state_.wall;
        sink_->emit(std::move(e));
      }
      fault_point("step");  // a kill here loses the points not yet flushed
      evaluated_last = t.eval_every > 0 && step % t.eval_every == 0;
      if (evaluated_last) evaluate(false);
      checkpointed_last = t.checkpoint_every > 0 && step % t.checkpoint_every == 0;
      if (checkpointed_last && !checkpoint()) return diverged_weights(step);
      if (recorder_.heartbeat_due()) {
        doing_ = "recording progress at step " + std::to_string(step);
        recorder_.heartbeat(position());
      }
      // One process stops when asked; the ranks of a data-parallel run at the step they agreed on.
      if ((reducer_ ? stop_now : g_stop.load()) && state_.step < total_steps_) {
        return stopped(checkpointed_last);
      }
    }
    if (!evaluated_last) evaluate(true);
    if (!checkpointed_last && !checkpoint()) return diverged_weights(state_.step);
    doing_ = "finishing the run";
    return recorder_.finished(position(), ema.value(), last_val_loss_);
  }

  // A data-parallel step's figures, summed over the ranks in one small collective.
  struct StepTotals {
    double loss = 0, aux = 0;  // sums of the ranks' micro-batch losses
    int64_t dropped = 0, routed = 0;
    double tokens_per_s = 0;
    bool stop = false;  // some rank was asked to stop: all stop after this step
  };

  StepTotals sum_over_ranks(const torch::Tensor& loss_sum, const torch::Tensor& aux_sum,
                            int64_t dropped, int64_t routed,
                            const std::vector<torch::Tensor>& step_load, double seconds) {
    const TrainConfig& t = config_.train;
    const double local_tokens = static_cast<double>(t.tokens_per_step()) / world_;
    std::vector<torch::Tensor> parts = {
        loss_sum.to(torch::kDouble).reshape({1}), aux_sum.to(torch::kDouble).reshape({1}),
        torch::tensor({static_cast<double>(dropped), static_cast<double>(routed),
                       g_stop.load() ? 1.0 : 0.0, local_tokens / seconds},
                      torch::kDouble)
            .to(device_)};
    for (const auto& load : step_load) parts.push_back(load.to(torch::kDouble).reshape({-1}));
    auto v = torch::cat(parts);  // (6 + layers * X)
    group_->sum(v, "summing the step's metrics");
    auto h = v.to(torch::kCPU);  // the one host read of the step
    const double* d = h.data_ptr<double>();
    StepTotals out;
    out.loss = d[0];
    out.aux = d[1];
    out.dropped = static_cast<int64_t>(d[2]);
    out.routed = static_cast<int64_t>(d[3]);
    out.stop = d[4] > 0;
    out.tokens_per_s = d[5];
    int64_t at = 6;
    for (size_t i = 0; i < step_load.size(); ++i) {
      const int64_t n = step_load[i].numel();
      auto counts = v.narrow(0, at, n).to(torch::kLong);  // every rank's tokens, on the device
      expert_load_[i] = expert_load_[i].defined() ? expert_load_[i] + counts : counts;
      at += n;
    }
    return out;
  }

  // What train.ops resolved to on this run's shapes, from the first step's calls.
  void record_ops_used() {
    const auto used = ops::used_implementations();
    writer_->set_ops_used(nlohmann::json(used).dump());
    if (!used.empty()) log("info", "Ops: " + describe_ops(used));
  }

  void record(const nlohmann::json& metrics) {
    for (auto it = metrics.begin(); it != metrics.end(); ++it) {
      metrics_->add(it.key(), state_.step, state_.tokens, state_.wall, it.value().get<double>());
    }
  }

  void evaluate(bool final) {
    doing_ = "evaluating at step " + std::to_string(state_.step);
    const TrainConfig& t = config_.train;
    model_->eval();
    torch::NoGradGuard no_grad;
    // The ranks of a data-parallel run share the batches, each evaluated whole (MoE capacity
    // depends on the batch): the sum of the losses is that of one process.
    double total = 0;
    for (size_t k = 0; k < val_.size(); ++k) {
      if (world_ > 1 && static_cast<int>(k % static_cast<size_t>(world_)) != rank_) continue;
      const auto& b = val_[k];
      auto batch =
          torch::from_blob(const_cast<int32_t*>(b.data()),
                           {static_cast<int64_t>(b.size()) / (t.seq_len + 1), t.seq_len + 1},
                           torch::kInt)
              .to(device_, torch::kLong);
      compat::CudaAutocast scope(device_.is_cuda() && t.dtype == "bf16");
      auto out = model_->forward_hidden(batch.narrow(1, 0, t.seq_len));
      total += model_->next_token_loss(out, batch.narrow(1, 1, t.seq_len)).item<double>();
      if (final) fault_point("final-eval");
    }
    if (group_) {
      auto sum = torch::tensor({total}, torch::kDouble).to(device_);
      group_->sum(sum, "evaluating");
      total = sum.to(torch::kCPU).item<double>();
    }
    last_val_loss_ = val_.empty() ? NAN : total / static_cast<double>(val_.size());
    nlohmann::json m = {{metric::kValLoss, last_val_loss_},
                        {metric::kValPpl, std::exp(last_val_loss_)}};
    if (!records_) {
      for (auto& load : expert_load_) load = torch::Tensor();
      return;
    }
    record(m);
    // Expert load since the previous evaluation, one metric per (layer, expert).
    for (size_t i = 0; i < expert_load_.size(); ++i) {
      if (!expert_load_[i].defined()) continue;
      auto counts = expert_load_[i].to(torch::kCPU);  // the one host read per evaluation
      auto frac = counts.to(torch::kDouble) / std::max<int64_t>(1, counts.sum().item<int64_t>());
      for (int64_t e = 0; e < frac.size(0); ++e) {
        metrics_->add(metric::expert_load(static_cast<int64_t>(i), e), state_.step, state_.tokens,
                      state_.wall, frac[e].item<double>());
      }
      expert_load_[i] = torch::Tensor();
    }
    writer_->add_event(std::string(to_string(EventKind::kEval)),
                       nlohmann::json{{"metrics", m}}.dump(), state_.step, state_.wall);
    ProgressEvent e;
    e.kind = EventKind::kEval;
    e.step = state_.step;
    e.tokens = state_.tokens;
    e.metrics = metric_list(m);
    e.wall = state_.wall;
    sink_->emit(std::move(e));
  }

  // Writes the checkpoint of this step; false (and nothing written) when the weights or the
  // optimizer state are no longer finite.
  bool checkpoint() {
    char name[64];
    std::snprintf(name, sizeof name, "step-%08lld.pt", static_cast<long long>(state_.step));
    const fs::path path = checkpoint_dir_ / name;
    doing_ = "writing the checkpoint " + path.string();
    // Every rank holds the same weights: all of them see the same answer here.
    if (!training_state_is_finite(model_, optimizer_.get())) return false;
    if (!records_) return true;  // rank 0 alone writes checkpoints
    // Every point up to this step is in the database before the checkpoint is: a resume from it
    // then continues a gap-free curve even after a SIGKILL lost the buffered points.
    metrics_->flush();
    state_.data_state = sampler_->state();  // the data position to continue from
    state_.expert_load = expert_load_;
    const SavedCheckpoint saved = save_checkpoint(path, config_, model_, optimizer_.get(), state_);
    fault_point("checkpoint-saved");  // the file is complete, its row not yet written
    writer_->add_checkpoint(state_.step, path.string(), saved.bytes, saved.hash);
    prune_checkpoints();
    ProgressEvent e;
    e.kind = EventKind::kCheckpoint;
    e.step = state_.step;
    e.path = path.string();
    e.bytes = saved.bytes;
    e.wall = state_.wall;
    sink_->emit(std::move(e));
    return true;
  }

  // Keeps the newest keep_checkpoints. Called only once a newer checkpoint is complete, and a
  // file that a kept row still names is never removed (a resumed run may have recorded the same
  // file twice).
  void prune_checkpoints() {
    auto all = writer_->checkpoints();
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.step != b.step ? a.step > b.step : a.id > b.id;
    });
    const size_t keep = static_cast<size_t>(std::max(1, config_.train.keep_checkpoints));
    std::vector<std::string> kept;
    for (size_t i = 0; i < std::min(keep, all.size()); ++i) kept.push_back(all[i].path);
    for (size_t i = keep; i < all.size(); ++i) {
      // The row goes first: a kill in between leaves a stray file, never a row without its file.
      writer_->delete_checkpoint_row(all[i].id);
      if (std::find(kept.begin(), kept.end(), all[i].path) != kept.end()) continue;
      fault_point("checkpoint-pruned");
      std::error_code ec;
      fs::remove(all[i].path, ec);
    }
  }

  TrainResult stopped(bool checkpointed) {
    if (!checkpointed && !checkpoint()) return diverged_weights(state_.step);
    doing_ = "stopping the run";
    return recorder_.stopped(position());
  }

  TrainResult diverged_weights(int64_t step) {
    return diverged(step, "The weights or optimizer state became non-finite");
  }

  // `what` happened at `step`: the run stops, naming the checkpoint a resume would continue from
  // (the newest one, which is finite because no other is ever written).
  TrainResult diverged(int64_t step, const std::string& what) {
    doing_ = "stopping the diverged run";
    return recorder_.diverged(position(step), what);
  }

  RunConfig config_;
  TrainerOptions options_;
  std::unique_ptr<ProgressSink> sink_;
  RunRecorder recorder_;                      // after sink_, which it reports to
  std::unique_ptr<store::RunWriter> writer_;  // the run this session trains
  std::unique_ptr<store::MetricBuffer> metrics_;
  torch::Device device_{torch::kCPU};
  std::string device_text_;
  data::TokenizedCorpus corpus_;
  int64_t total_steps_ = 0;
  fs::path checkpoint_dir_;  // absolute: <root>/<run uuid>
  fs::path origin_;          // the checkpoint a resume continues from (absolute); empty: step 0
  bool resumed_at_checkpoint_ = false;
  std::string doing_ = "starting";  // what a failure interrupted, for its message
  LanguageModel model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<data::WindowSampler> sampler_;
  std::vector<std::vector<int32_t>> val_;
  std::vector<torch::Tensor> expert_load_;  // (X) tokens per expert since the last evaluation
  TrainState state_;
  double last_val_loss_ = NAN;
  // Data parallel (ranks_ null: one process, none of these is used).
  Rendezvous* ranks_ = nullptr;
  int rank_ = 0, world_ = 1;
  bool records_ = true;  // writes the database and the checkpoints: rank 0, or the only process
  int session_ = -1;     // this run's session of the command (see session_key)
  bool from_checkpoint_ = false;
  std::unique_ptr<RankGroup> group_;
  std::unique_ptr<GradientReducer> reducer_;
  MemoryAtFailure memory_;  // free_bytes: before the model was placed on the GPU
};

}  // namespace

void check_batch_divides(const RunConfig& config, int world_size) {
  const int b = config.train.batch_size;
  if (world_size > 1 && b % world_size != 0) {
    throw UserError("train.batch_size " + std::to_string(b) + " of run " + config.name +
                        " does not divide by the " + std::to_string(world_size) +
                        " ranks of this data-parallel run.",
                    "Set it to a multiple of " + std::to_string(world_size) +
                        " (each rank trains batch_size / " + std::to_string(world_size) +
                        " windows of every batch), or start as many ranks as divide it.");
  }
}

void skip_unstarted_run(Rendezvous& ranks, int sessions_before) {
  if (ranks.sessions() != sessions_before) return;
  const int k = ranks.next_session();
  ranks.post(session_key(k, "run"), nlohmann::json{{"skip", true}}.dump());
}

void release_ranks(Rendezvous& ranks, int exit_code, int wait_s) {
  const int k = ranks.next_session();
  ranks.post(session_key(k, "run"), nlohmann::json{{"end", true}, {"exit_code", exit_code}}.dump());
  // The store lives in this process: it stays until every rank has read the message (a rank
  // that is gone is waited for wait_s at most; none when a rank was lost already).
  for (int r = 1; r < ranks.env().world_size && !ranks.lost(); ++r) {
    try {
      ranks.await(session_key(k, "ended/" + std::to_string(r)), std::chrono::seconds(wait_s));
    } catch (const RankLostError&) {
      return;
    }
  }
}

int follow_rank0(const TrainerOptions& options) {
  Rendezvous& ranks = *options.ranks;
  TrainerOptions follower = options;
  follower.progress = "none";  // rank 0's stream is the run's
  int worst = kExitOk;
  for (;;) {
    const int k = ranks.next_session();
    const auto message = nlohmann::json::parse(ranks.await(session_key(k, "run")));
    if (message.contains("end")) {
      ranks.post(session_key(k, "ended/" + std::to_string(ranks.env().rank)), "");
      return worst != kExitOk ? worst : message.value("exit_code", static_cast<int>(kExitOk));
    }
    if (message.contains("skip")) continue;
    TrainingSession session(run_config_from_json(message.at("config")), follower);
    const TrainResult r = session.follow(k, message.value("checkpoint", false));
    if (r.exit_code == kExitOk) continue;
    if (!r.error.empty()) {
      std::fprintf(stderr, "mmlab: rank %d: %s\n", ranks.env().rank, r.error.c_str());
    }
    if (worst == kExitOk) worst = r.exit_code;
  }
}

void check_checkpoint_root(const std::filesystem::path& root) {
  require_writable_folder(absolute_path(root.empty() ? data_home() / "checkpoints" : root));
}

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

TrainResult resume_run(int64_t run_id, const TrainerOptions& options, const ResumeOptions& resume) {
  store::OpenOptions existing;
  existing.create = false;  // a run to resume lives in an existing database
  store::ResultsStore results(options.db, existing);
  auto row = results.reader().find_run(run_id);
  if (!row) {
    throw UserError(
        "There is no run " + std::to_string(run_id) + " in " + options.db.string() + ".",
        "List the runs with `mmlab runs list`.");
  }
  if (row->effective_status == RunStatus::kFinished) {
    throw UserError("Run " + std::to_string(run_id) + " (" + row->name + ") has already finished.",
                    "Start a new run to train longer.");
  }
  // A trainer killed a moment ago still has a fresh heartbeat; on this host its pid tells. A run
  // without a pid was killed before its process recorded itself: nothing is running it.
  const bool never_started = row->pid <= 0;
  const bool dead_here = row->host == store::current_host() && row->pid > 0 &&
                         ::kill(static_cast<pid_t>(row->pid), 0) != 0 && errno == ESRCH;
  if (row->effective_status == RunStatus::kQueued) {
    RunConfig config = run_config_from_json(nlohmann::json::parse(row->config_json));
    if (!resume.device.empty()) config.train.device = resume.device;
    TrainingSession session(config, options);
    return session.start_queued(*row, results.writer(run_id));
  }
  if (row->effective_status == RunStatus::kRunning && !dead_here && !never_started) {
    throw UserError("Run " + std::to_string(run_id) + " (" + row->name + ") is " +
                        std::string(store::to_string(row->effective_status)) + " (pid " +
                        std::to_string(row->pid) + " on " + row->host + ").",
                    "Stop it first, or wait until its heartbeat is stale and it shows as lost.");
  }
  RunConfig config = run_config_from_json(nlohmann::json::parse(row->config_json));
  if (!resume.device.empty()) config.train.device = resume.device;
  TrainingSession session(config, options);
  return session.resume(*row, results.writer(run_id), resume);
}

}  // namespace mmlab
