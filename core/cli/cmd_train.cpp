// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab train FILE` and `mmlab train --resume RUN`.
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "core/cli/cli.h"
#include "core/config/experiment.h"
#include "core/models/op_choice.h"
#include "core/train/trainer.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

struct TrainArgs {
  std::string file;
  std::vector<std::string> runs;
  int64_t resume = 0;
  std::string progress = "auto";
  std::string device;
  int64_t steps = 0;
  int parallel = 1;
  std::string checkpoint_dir;
};

// Runs each selected run in its own child process, at most `parallel` at a time.
int train_in_children(const TrainArgs& a, const std::vector<std::string>& names,
                      const Context& ctx) {
  std::map<pid_t, std::string> alive;
  size_t next = 0;
  int worst = kExitOk;
  auto spawn = [&](const std::string& name) {
    std::vector<std::string> args = {"mmlab",
                                     "train",
                                     a.file,
                                     "--run",
                                     name,
                                     "--db",
                                     ctx.db_path().string(),
                                     "--progress",
                                     a.progress == "jsonl" ? "jsonl" : "none"};
    if (!a.device.empty()) args.insert(args.end(), {"--device", a.device});
    if (a.steps > 0) args.insert(args.end(), {"--steps", std::to_string(a.steps)});
    if (!a.checkpoint_dir.empty()) args.insert(args.end(), {"--checkpoint-dir", a.checkpoint_dir});
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(kExitFailure);
    }
    alive[pid] = name;
    std::cerr << "started " << name << " (pid " << pid << ")\n";
  };
  while (next < names.size() || !alive.empty()) {
    while (next < names.size() && static_cast<int>(alive.size()) < a.parallel &&
           !stop_requested()) {
      spawn(names[next++]);
    }
    if (stop_requested()) {
      for (const auto& [pid, name] : alive) ::kill(pid, SIGTERM);
      next = names.size();
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : kExitFailure;
    std::cerr << alive[pid] << " exited with " << rc << "\n";
    if (rc != kExitOk && worst == kExitOk) worst = rc;
    alive.erase(pid);
  }
  return worst;
}

int train(const TrainArgs& a, const Context& ctx) {
  install_stop_handlers();
  TrainerOptions opts;
  opts.db = ctx.db_path();
  opts.progress = a.progress;
  opts.checkpoint_root = a.checkpoint_dir;
  if (a.resume > 0) {
    if (!a.file.empty()) {
      throw UserError("Give either an experiment file or --resume RUN, not both.", "", kExitUsage);
    }
    return resume_run(a.resume, opts).exit_code;
  }
  if (a.file.empty()) {
    throw UserError("No experiment file given.",
                    "Run `mmlab train FILE` or `mmlab train --resume RUN`.", kExitUsage);
  }
  Experiment ex = load_experiment(a.file);
  std::vector<RunConfig> selected;
  for (const auto& r : ex.runs) {
    bool wanted = a.runs.empty();
    for (const auto& n : a.runs)
      wanted = wanted || n == r.name || r.name.rfind(n + "/seed-", 0) == 0;
    if (wanted) selected.push_back(r);
  }
  if (selected.empty()) {
    std::string names;
    for (const auto& r : ex.runs) names += (names.empty() ? "" : ", ") + r.name;
    throw UserError("No run of " + a.file + " is named as given with --run.",
                    "Its runs: " + names + ".");
  }
  for (auto& r : selected) {
    if (!a.device.empty()) r.train.device = a.device;
    if (a.steps > 0) {
      r.train.steps = a.steps;
      r.train.tokens = 0;
    }
    check_ops_choice(r);  // before any run starts
  }
  if (a.parallel > 1 && selected.size() > 1) {
    std::vector<std::string> names;
    for (const auto& r : selected) names.push_back(r.name);
    return train_in_children(a, names, ctx);
  }
  opts.experiment_name = ex.name;
  opts.experiment_spec = ex.source.dump();
  int worst = kExitOk;
  for (const auto& r : selected) {
    if (stop_requested()) break;
    TrainResult result = train_new_run(r, opts);
    if (result.exit_code != kExitOk) {
      if (a.progress != "jsonl")
        std::cerr << "mmlab: " << r.name << " " << result.status << ": " << result.error << "\n";
      if (worst == kExitOk) worst = result.exit_code;
    }
  }
  return worst;
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub =
      app.add_subcommand("train", "Train the runs of an experiment file, or resume a run");
  sub->add_option("file", args->file, "Experiment file (JSON)");
  sub->add_option("--run", args->runs, "Train only these runs (by name; repeatable)");
  sub->add_option("--resume", args->resume, "Resume run RUN from its last checkpoint");
  sub->add_option("--progress", args->progress, "jsonl | bar | none | auto")
      ->check(CLI::IsMember({"jsonl", "bar", "none", "auto"}));
  sub->add_option("--device", args->device, "Override train.device (cpu, cuda, cuda:N)");
  sub->add_option("--steps", args->steps, "Override the step budget (quick looks, tests)");
  sub->add_option("--parallel", args->parallel,
                  "Train up to N runs at once, each in its own process")
      ->check(CLI::PositiveNumber);
  sub->add_option("--checkpoint-dir", args->checkpoint_dir,
                  "Where checkpoints go (default: $XDG_DATA_HOME/mmlab/checkpoints)");
  add_db_option(sub, ctx);
  sub->callback([args, &ctx] { ctx.action = [args, &ctx] { return train(*args, ctx); }; });
}

}  // namespace mmlab::cli
