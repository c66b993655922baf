// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab bench`: training throughput (tokens/s, step time, peak memory, MFU) and recurrent decode
// speed of each run of an experiment, measured side by side in one process on synthetic tokens,
// with ratios against the first run; with `--ops a,b` each run once per op implementation choice,
// with ratios against the first choice.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include "core/cli/cli.h"
#include "core/cli/kernel_profile.h"
#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/config/param_count.h"
#include "core/models/language_model.h"
#include "core/models/op_choice.h"
#include "core/models/token_decoder.h"
#include "core/ops/torch_compat.h"
#include "core/train/device.h"
#include "core/train/fused_adamw.h"
#include "core/train/grad_clip.h"
#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string file;
  std::vector<std::string> runs;
  std::string device = "cpu";
  int steps = 10;
  int warmup = 2;
  int batch_size = 0;
  int seq_len = 0;
  int decode_tokens = 64;
  double peak_tflops = 0;
  std::vector<std::string> ops;  // implementation choices; empty = each run's train.ops
  std::string dtype;
  std::string json_out;
  std::string profile_dir;  // "" = no profile
  int profile_steps = 2;
};

struct BenchRow {
  std::string name;
  std::string ops;  // the choice, "" = the run's own train.ops
  std::map<std::string, std::string> ops_used;
  double tokens_per_s = 0, step_ms = 0, peak_gb = 0, mfu = 0, decode_tokens_per_s = 0;
  double graphed_decode_tokens_per_s = 0;  // 0 when the step cannot be a CUDA graph
  std::string why_not_graphed;
  int64_t active = 0;
};

// Training FLOPs per token: 6 per active weight (forward + backward) plus attention scores
// (QK^T and AV: 4*L*d forward, x3 with backward). The selective scan's few FLOPs are not counted.
double flops_per_token(const RunConfig& r, int vocab) {
  const ParamCounts c = count_params(r.model, vocab);
  double flops = 6.0 * static_cast<double>(c.nonembed_active + int64_t(vocab) * r.model.d_model);
  for (const LayerSpec& s : expand_layers(r.model)) {
    if (s.kind == LayerKind::kAttention) flops += 12.0 * r.train.seq_len * r.model.d_model;
  }
  return flops;
}

// `r` with the command line's overrides; `ops` (unless "") replaces train.ops.
RunConfig bench_config(RunConfig r, const BenchArgs& a, const std::string& ops) {
  if (a.batch_size > 0) r.train.batch_size = a.batch_size;
  if (a.seq_len > 0) r.train.seq_len = a.seq_len;
  if (!a.dtype.empty()) r.train.dtype = a.dtype;
  r.train.device = a.device;
  if (!ops.empty()) r.train.ops = OpsConfig{ops, {}};
  return r;
}

BenchRow bench_run(RunConfig r, const BenchArgs& a, const torch::Device& device) {
  ops::ScopedOpsChoice ops_scope(r.train.ops);
  ops::clear_used_implementations();
  r.model.vocab_size = expected_vocab_size(r);
  torch::manual_seed(0);
  LanguageModel model(r.model);
  model->to(device);
  FusedAdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));  // as the trainer's
  const bool autocast = device.is_cuda() && r.train.dtype == "bf16";
  auto ids = torch::randint(0, r.model.vocab_size, {r.train.batch_size, r.train.seq_len + 1},
                            torch::TensorOptions().dtype(torch::kLong).device(device));
  auto step = [&] {
    opt.zero_grad();
    torch::Tensor loss;
    {
      compat::CudaAutocast scope(autocast);
      auto out = model->forward_hidden(ids.narrow(1, 0, r.train.seq_len));
      loss = model->next_token_loss(out, ids.narrow(1, 1, r.train.seq_len)) + out.aux_loss;
    }
    loss.backward();
    clip_grad_norm_on_device(model->parameters(), 0.5);  // as the trainer clips
    opt.step();
    return loss.item<double>();  // waits for the device
  };
  for (int i = 0; i < a.warmup; ++i) step();
  if (device.is_cuda()) compat::cuda_reset_peak(device.index());
  const auto t0 = Clock::now();
  for (int i = 0; i < a.steps; ++i) step();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // Profiled after the timed steps, so the profiler's overhead is in no figure.
  if (!a.profile_dir.empty()) {
    const std::string label = r.train.ops.all == "auto" ? r.name : r.name + "." + r.train.ops.all;
    const auto trace = std::filesystem::path(a.profile_dir) / (label + ".trace.json");
    KernelProfile profile(device.is_cuda());
    for (int i = 0; i < a.profile_steps; ++i) step();
    const ProfileSummary summary = profile.finish(trace.string());
    std::printf("%s: profile of %d steps in %s\n%s", label.c_str(), a.profile_steps, trace.c_str(),
                format_profile(summary, a.profile_steps, 15).c_str());
  }

  BenchRow row;
  row.name = r.name;
  row.active = count_params(r.model).active;
  row.step_ms = 1000.0 * secs / a.steps;
  row.tokens_per_s =
      static_cast<double>(r.train.tokens_per_step() / r.train.grad_accum) * a.steps / secs;
  if (device.is_cuda())
    row.peak_gb = static_cast<double>(compat::cuda_peak_allocated(device.index())) / 1e9;
  if (a.peak_tflops > 0) {
    row.mfu = flops_per_token(r, r.model.vocab_size) * row.tokens_per_s / (a.peak_tflops * 1e12);
  }
  // Decode: batch 1, one token at a time with the model's recurrent/KV cache, op by op and (where
  // the model allows) replayed as one CUDA graph per token, side by side.
  model->eval();
  torch::NoGradGuard no_grad;
  auto first = ids.narrow(0, 0, 1).narrow(1, 0, 1);
  auto timed_decode = [&](bool graphed) {
    compat::CudaAutocast scope(autocast);
    std::vector<LayerCache> caches;
    model->decode(first, caches);         // the prompt
    TokenDecoder decoder(model, caches);  // used only for the graphed timing
    auto tok = first;
    auto step = [&] { return graphed ? decoder.step(tok) : model->decode(tok, caches); };
    tok = step().argmax(-1);  // warm (records the graph)
    if (graphed && !decoder.graphed()) {
      row.why_not_graphed = decoder.why_not_graphed();
      return 0.0;
    }
    const auto d0 = Clock::now();
    for (int i = 0; i < a.decode_tokens; ++i) tok = step().argmax(-1);
    tok.cpu();  // waits for the device
    return a.decode_tokens / std::chrono::duration<double>(Clock::now() - d0).count();
  };
  row.decode_tokens_per_s = timed_decode(false);
  row.graphed_decode_tokens_per_s = timed_decode(true);
  row.ops_used = ops::used_implementations();
  return row;
}

/// "1234.5 tok/s (x4.12)", or why the step could not be recorded.
std::string graphed_decode_text(const BenchRow& b) {
  if (b.graphed_decode_tokens_per_s <= 0) return "- (" + b.why_not_graphed + ")";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f tok/s (x%.2f)", b.graphed_decode_tokens_per_s,
                b.graphed_decode_tokens_per_s / b.decode_tokens_per_s);
  return buf;
}

int bench(const BenchArgs& a) {
  const std::string file =
      a.file.empty() ? (experiments_dir() / "quick-compare.json").string() : a.file;
  Experiment ex = load_experiment(file);
  const std::vector<std::string> choices = a.ops.empty() ? std::vector<std::string>{""} : a.ops;
  std::vector<RunConfig> selected;
  for (const auto& r : ex.runs) {
    bool wanted = a.runs.empty();
    for (const auto& n : a.runs) wanted = wanted || n == r.name;
    if (!wanted) continue;
    // Every choice must be able to run every selected run before anything is measured.
    for (const auto& c : choices) check_ops_choice(bench_config(r, a, c));
    selected.push_back(r);
  }
  if (!a.profile_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.profile_dir, ec);
    if (ec) {
      throw UserError(
          "The profile folder " + a.profile_dir + " could not be created (" + ec.message() + ").",
          "Give --profile a folder you can write to.");
    }
    if (!profiler_available(a.profile_dir)) throw no_profiler_error();
  }
  set_cpu_threads(0);
  const torch::Device device = resolve_device(a.device);
  std::printf(
      "mmlab bench: %s on %s, LibTorch %s, %d timed steps after %d warm-up; ratios to the %s\n",
      file.c_str(), describe_device(device).c_str(), compat::torch_version().c_str(), a.steps,
      a.warmup, choices.size() > 1 ? "first --ops choice" : "first run");
  std::vector<BenchRow> rows;
  for (const auto& r : selected) {
    const size_t first_of_run = rows.size();
    for (const auto& c : choices) {
      rows.push_back(bench_run(bench_config(r, a, c), a, device));
      BenchRow& b = rows.back();
      b.ops = c;
      const BenchRow& base = choices.size() > 1 ? rows[first_of_run] : rows.front();
      const std::string label = c.empty() ? b.name : b.name + " [" + c + "]";
      std::printf(
          "%-32s %12.0f tok/s (x%.2f)  %9.1f ms/step  peak %6.2f GB  MFU %5.1f%%  decode %8.1f "
          "tok/s (x%.2f), as a CUDA graph %s  ops %s\n",
          label.c_str(), b.tokens_per_s, b.tokens_per_s / base.tokens_per_s, b.step_ms, b.peak_gb,
          100 * b.mfu, b.decode_tokens_per_s, b.decode_tokens_per_s / base.decode_tokens_per_s,
          graphed_decode_text(b).c_str(),
          b.ops_used.empty() ? "-" : describe_ops(b.ops_used).c_str());
      std::fflush(stdout);
    }
  }
  if (!a.json_out.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& b : rows) {
      j.push_back({{"run", b.name},
                   {"ops", b.ops.empty() ? "train.ops" : b.ops},
                   {"ops_used", b.ops_used},
                   {"tokens_per_s", b.tokens_per_s},
                   {"step_ms", b.step_ms},
                   {"peak_gb", b.peak_gb},
                   {"mfu", b.mfu},
                   {"decode_tokens_per_s", b.decode_tokens_per_s},
                   {"graphed_decode_tokens_per_s", b.graphed_decode_tokens_per_s},
                   {"device", describe_device(device)}});
    }
    write_file_atomically(a.json_out, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Training and decode throughput of each run of an experiment, side by side");
  sub->add_option("file", a->file, "Experiment file (default: experiments/quick-compare.json)");
  sub->add_option("--run", a->runs, "Only these runs");
  sub->add_option("--device", a->device, "cpu, cuda or cuda:N");
  sub->add_option("--steps", a->steps, "Timed training steps")->check(CLI::PositiveNumber);
  sub->add_option("--warmup", a->warmup, "Untimed steps first");
  sub->add_option("--batch-size", a->batch_size, "Override train.batch_size");
  sub->add_option("--seq-len", a->seq_len, "Override train.seq_len");
  sub->add_option("--dtype", a->dtype, "Override train.dtype (bf16 | fp32)");
  sub->add_option("--decode-tokens", a->decode_tokens, "Tokens decoded one at a time");
  sub->add_option("--peak-tflops", a->peak_tflops,
                  "The device's peak TFLOP/s for MFU (e.g. 989 for an H100/H200 in dense bf16)");
  sub->add_option("--ops", a->ops,
                  "Op implementation choices to compare, comma separated (auto, reference, cuda, "
                  "...); each replaces train.ops")
      ->delimiter(',');
  sub->add_option("--json", a->json_out, "Also write the figures as JSON to this file");
  sub->add_option("--profile", a->profile_dir,
                  "After the timed steps, profile more steps and write each run's Chrome trace "
                  "(RUN.trace.json) into this folder; prints the kernels that took the most time");
  sub->add_option("--profile-steps", a->profile_steps, "Steps to profile")
      ->check(CLI::PositiveNumber);
  sub->callback([a, &ctx] { ctx.action = [a] { return bench(*a); }; });
}

}  // namespace mmlab::cli
