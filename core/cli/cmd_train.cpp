// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab train FILE` and `mmlab train --resume RUN`.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "core/cli/cli.h"
#include "core/cli/report.h"
#include "core/config/experiment.h"
#include "core/models/op_choice.h"
#include "core/queue/experiment_queue.h"
#include "core/store/store.h"
#include "core/train/rank_env.h"
#include "core/train/rank_group.h"
#include "core/train/trainer.h"
#include "core/util/console.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

struct TrainArgs {
  std::string file;
  std::vector<std::string> runs;
  std::string resume;  ///< a run's number, uuid or uuid prefix
  std::string progress = "auto";
  std::string device;
  int64_t steps = 0;
  int parallel = 1;
  std::string checkpoint_dir;
  std::string checkpoint;              ///< --checkpoint FILE (with --resume)
  std::string resume_from = "latest";  ///< latest | latest-valid
  bool restart = false;
  std::string uuid;  ///< --uuid: the new run's uuid (one run; `mmlab remote launch` sets it)
  int rank_timeout_s = 300;  ///< --rank-timeout (data-parallel runs)
  // Which options were given (0 is a value the user may have typed).
  bool steps_given = false, parallel_given = false, resume_from_given = false;
};

// Every combination that cannot mean anything is refused before anything is opened.
void check_train_args(const TrainArgs& a) {
  if (a.steps_given && a.steps <= 0) {
    throw UserError(
        "--steps must be a positive number of steps, not " + std::to_string(a.steps) + ".",
        "Give --steps N with N >= 1, or leave it out to train the file's budget.", kExitUsage);
  }
  const bool resuming = !a.resume.empty();
  const char* resume_only = !a.checkpoint.empty() ? "--checkpoint"
                            : a.resume_from_given ? "--resume-from"
                            : a.restart           ? "--restart"
                                                  : nullptr;
  if (!resuming && resume_only) {
    throw UserError(std::string(resume_only) + " only applies to --resume RUN.",
                    "Add --resume RUN, or leave it out.", kExitUsage);
  }
  if (!resuming) return;
  if (!a.file.empty()) {
    throw UserError("Give either an experiment file or --resume RUN, not both.", "", kExitUsage);
  }
  const char* new_only = a.steps_given      ? "--steps"
                         : !a.runs.empty()  ? "--run"
                         : !a.uuid.empty()  ? "--uuid"
                         : a.parallel_given ? "--parallel"
                                            : nullptr;
  if (new_only) {
    throw UserError(std::string(new_only) + " applies to new runs; a resumed run keeps its own.",
                    "Leave it out, or start a new run with `mmlab train FILE`.", kExitUsage);
  }
  const int choices = !a.checkpoint.empty() + a.resume_from_given + a.restart;
  if (choices > 1) {
    throw UserError("--checkpoint, --resume-from and --restart each say where to resume from.",
                    "Give only one of them.", kExitUsage);
  }
}

// Every failed run says why on stderr, in every progress mode (the stream on stdout is for the
// studio; a terminal or a log file must not need it).
void report_failure(const std::string& run, const TrainResult& result) {
  if (result.exit_code == kExitOk) return;
  write_stderr_line("mmlab: " + run + " " + std::string(to_string(result.status)) + ": " +
                    result.error);
}

// Whether another process is training the run now.
bool running_elsewhere(const std::filesystem::path& db, int64_t run_id) {
  store::ResultsStore st(db);
  const store::RunRow row = st.reader().get_run(run_id);
  return row.effective_status == store::RunStatus::kRunning && row.pid != ::getpid();
}

// After a stop: the runs that never started are still queued in the database; say how to go on.
void hint_queued_left(const TrainArgs& a, const Context& ctx, size_t left) {
  if (left == 0) return;
  std::cerr << "mmlab: " << left << (left == 1 ? " run stays" : " runs stay")
            << " queued; `mmlab train " << a.file << " --db " << ctx.db_path().string()
            << "` continues the experiment.\n";
}

// Trains each planned run in its own child process (`mmlab train --resume RUN`, which starts a
// queued run and continues any other), at most `parallel` at a time.
int train_in_children(const TrainArgs& a, const std::vector<queue::QueuedRun>& runs,
                      const Context& ctx) {
  std::map<pid_t, std::string> alive;
  size_t next = 0;
  int worst = kExitOk;
  auto spawn = [&](const queue::QueuedRun& run) {
    std::vector<std::string> args = {"mmlab",      "train",
                                     "--resume",   std::to_string(run.run_id),
                                     "--db",       ctx.db_path().string(),
                                     "--progress", a.progress == "jsonl" ? "jsonl" : "none"};
    if (!a.device.empty()) args.insert(args.end(), {"--device", a.device});
    if (!a.checkpoint_dir.empty()) args.insert(args.end(), {"--checkpoint-dir", a.checkpoint_dir});
    pid_t pid = ::fork();
    if (pid == 0) {
      // Held until the child's own handlers are in place (its run() lets them through).
      sigset_t stop_signals;
      sigemptyset(&stop_signals);
      sigaddset(&stop_signals, SIGTERM);
      sigaddset(&stop_signals, SIGINT);
      ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(kExitFailure);
    }
    alive[pid] = run.name;
    std::cerr << "started " << run.name << " (pid " << pid << ")\n";
  };
  size_t left = 0;
  while (next < runs.size() || !alive.empty()) {
    while (next < runs.size() && static_cast<int>(alive.size()) < a.parallel && !stop_requested()) {
      spawn(runs[next++]);
    }
    if (stop_requested() && next < runs.size()) {
      for (const auto& [pid, name] : alive) ::kill(pid, SIGTERM);
      left = runs.size() - next;
      next = runs.size();
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
  hint_queued_left(a, ctx, left);
  return worst;
}

int train_runs(const TrainArgs& a, const Context& ctx, TrainerOptions opts);

int train(const TrainArgs& a, const Context& ctx) {
  TrainerOptions opts;
  opts.db = ctx.db_path();
  opts.progress = a.progress;
  opts.checkpoint_root = a.checkpoint_dir;
  opts.rank_timeout_s = a.rank_timeout_s;
  check_train_args(a);
  // Under torchrun, srun, mpirun or `mmlab launch` with more than one process: data parallel.
  const RankEnv env = rank_env_from_process();
  if (!env.distributed()) return train_runs(a, ctx, opts);
  if (a.parallel_given && a.parallel > 1) {
    throw UserError(
        "--parallel starts runs side by side; the ranks of a data-parallel command "
        "train its runs one after another.",
        "Leave --parallel out.", kExitUsage);
  }
  Rendezvous ranks(env);
  opts.ranks = &ranks;
  if (!env.is_root()) return follow_rank0(opts);
  int code = kExitFailure;
  try {
    code = train_runs(a, ctx, opts);
  } catch (const UserError& e) {
    release_ranks(ranks, e.code(), a.rank_timeout_s);
    throw;
  } catch (...) {
    release_ranks(ranks, kExitFailure, a.rank_timeout_s);
    throw;
  }
  release_ranks(ranks, code, a.rank_timeout_s);
  return code;
}

// Trains one run (resume_run), keeping the other ranks of a data-parallel command in step when
// it did not start.
TrainResult train_one(int64_t run_id, const TrainerOptions& opts, const ResumeOptions& how) {
  if (!opts.ranks) return resume_run(run_id, opts, how);
  const int before = opts.ranks->sessions();
  TrainResult result;
  try {
    result = resume_run(run_id, opts, how);
  } catch (...) {
    skip_unstarted_run(*opts.ranks, before);
    throw;
  }
  skip_unstarted_run(*opts.ranks, before);
  return result;
}

int train_runs(const TrainArgs& a, const Context& ctx, TrainerOptions opts) {
  if (!a.resume.empty()) {
    int64_t run_id = 0;
    {
      // The run to resume lives in an existing database: a missing one is refused, not created.
      store::OpenOptions existing;
      existing.create = false;
      store::ResultsStore st(opts.db, existing);
      run_id = resolve_run(st.reader(), a.resume).id;
    }
    ResumeOptions how;
    how.device = a.device;
    if (a.restart) {
      how.from = ResumeFrom::kRestart;
    } else if (!a.checkpoint.empty()) {
      how.from = ResumeFrom::kFile;
      how.checkpoint = a.checkpoint;
    } else if (a.resume_from == "latest-valid") {
      how.from = ResumeFrom::kLatestValid;
    }
    TrainResult result = train_one(run_id, opts, how);
    report_failure("run " + std::to_string(run_id), result);
    return result.exit_code;
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
    if (opts.ranks) check_batch_divides(r, opts.ranks->env().world_size);
  }
  // What the command line can get wrong is refused before any row is written.
  check_checkpoint_root(a.checkpoint_dir);
  queue::QueueOptions queue_options;
  if (!a.uuid.empty()) {
    if (selected.size() != 1) {
      throw UserError("--uuid names one run, but " + std::to_string(selected.size()) + " runs of " +
                          a.file + " are selected.",
                      "Add --run NAME.", kExitUsage);
    }
    queue_options.uuids[selected.front().name] = a.uuid;
  }
  // Every run's row first (queued), so a stop or a crash never loses the runs not started yet.
  queue::LaunchPlan plan;
  {
    store::ResultsStore st(opts.db);
    plan = queue::queue_experiment(st, ex, selected, queue_options);
  }
  if (!a.uuid.empty() && plan.runs.front().uuid != a.uuid) {
    throw UserError("The results database " + opts.db.string() + " already has run " +
                        plan.runs.front().name + " of experiment " + ex.name +
                        " under another uuid than " + a.uuid + ".",
                    "Give the experiment a new \"name\", or use another --db.");
  }
  if (plan.continuing) std::cerr << "mmlab: " << plan.summary(opts.db.string()) << "\n";
  const std::vector<queue::QueuedRun> todo = plan.to_train();
  if (a.parallel > 1 && todo.size() > 1 && !opts.ranks) return train_in_children(a, todo, ctx);
  ResumeOptions how;
  how.device = a.device;
  int worst = kExitOk;
  size_t done = 0;
  for (const auto& run : todo) {
    if (stop_requested()) break;
    ++done;
    opts.run_index = static_cast<int>(done);
    opts.run_count = static_cast<int>(todo.size());
    TrainResult result;
    try {
      result = train_one(run.run_id, opts, how);
    } catch (const UserError&) {
      // A studio that opened this database queues its queued runs too: whichever process
      // starts a run first trains it, and the other goes on with the next one.
      if (!running_elsewhere(opts.db, run.run_id)) throw;
      std::cerr << "mmlab: " << run.name << " is training in another process; skipped.\n";
      continue;
    }
    report_failure(run.name, result);
    if (result.exit_code != kExitOk && worst == kExitOk) worst = result.exit_code;
  }
  hint_queued_left(a, ctx, todo.size() - done);
  return worst;
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub =
      app.add_subcommand("train", "Train the runs of an experiment file, or resume a run");
  sub->add_option("file", args->file, "Experiment file (JSON)");
  sub->add_option("--run", args->runs, "Train only these runs (by name; repeatable)");
  sub->add_option("--resume", args->resume,
                  "Resume run RUN (number, uuid or uuid prefix) from its newest checkpoint");
  sub->add_option("--checkpoint", args->checkpoint,
                  "With --resume: continue from this checkpoint file instead");
  sub->add_option("--resume-from", args->resume_from,
                  "With --resume: latest (refuse a damaged one) | latest-valid (newest intact)")
      ->check(CLI::IsMember({"latest", "latest-valid"}));
  sub->add_flag("--restart", args->restart,
                "With --resume: discard the run's curve and checkpoints and train from step 0");
  sub->add_option("--progress", args->progress, "jsonl | bar | none | auto")
      ->check(CLI::IsMember({"jsonl", "bar", "none", "auto"}));
  sub->add_option("--device", args->device, "Override train.device (cpu, cuda, cuda:N)");
  sub->add_option("--steps", args->steps, "Override the step budget (quick looks, tests)");
  sub->add_option("--uuid", args->uuid,
                  "The new run's uuid (32 hex digits): keeps the identity of a row queued in "
                  "another database, as `mmlab remote launch` does")
      ->check([](const std::string& u) {
        return u.size() == 32 && u.find_first_not_of("0123456789abcdef") == std::string::npos
                   ? std::string()
                   : std::string("a uuid is 32 lowercase hex digits");
      });
  sub->add_option("--parallel", args->parallel,
                  "Train up to N runs at once, each in its own process")
      ->check(CLI::PositiveNumber);
  sub->add_option("--checkpoint-dir", args->checkpoint_dir,
                  "Where checkpoints go (default: $XDG_DATA_HOME/mmlab/checkpoints; a resumed run "
                  "keeps the folder it used)");
  sub->add_option("--rank-timeout", args->rank_timeout_s,
                  "Data-parallel runs: seconds a rank waits for the others before its run fails "
                  "(default 300)")
      ->check(CLI::PositiveNumber);
  add_db_option(sub, ctx);
  sub->callback([args, sub, &ctx] {
    // Before run() lets through a stop signal held back during start-up.
    install_stop_handlers();
    args->steps_given = sub->count("--steps") > 0;
    args->parallel_given = sub->count("--parallel") > 0;
    args->resume_from_given = sub->count("--resume-from") > 0;
    ctx.action = [args, &ctx] { return train(*args, ctx); };
  });
}

}  // namespace mmlab::cli
