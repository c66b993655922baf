// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/cli.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "core/train/failure.h"
#include "core/train/fault_point.h"
#include "core/util/console.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "core/util/install_paths.h"

namespace mmlab::cli {

namespace fs = std::filesystem;

fs::path Context::db_path() const {
  return db.empty() ? default_db_path() : fs::path(db);
}

void add_db_option(CLI::App* sub, Context& ctx) {
  sub->add_option("--db", ctx.db,
                  "Results database (default: $XDG_DATA_HOME/mmlab/results.sqlite)");
}

fs::path experiments_dir() {
  for (const fs::path& dir : data_dir_candidates()) {
    std::error_code ec;
    if (fs::is_directory(dir / "experiments" / "paper", ec)) return dir / "experiments";
  }
  throw UserError("The experiments folder was not found next to mmlab.",
                  "Pass experiment files explicitly.");
}

// libgomp and OpenBLAS read their settings when they are loaded, before main(), so the only way to
// set them for this process is to start it again with them in the environment. Measured on 2
// loaded cores: OpenMP's default busy-waiting plus OpenBLAS's own thread pool made a tiny
// Transformer's training step 35x slower than passive waiting with single-threaded BLAS calls
// (LibTorch already parallelises around them).
//
// A SIGTERM or SIGINT that arrives during the restart (loading LibTorch takes a while) would end
// the process before `mmlab train` can handle it as a stop request: they are blocked across the
// exec, stay pending, and are delivered once run() has parsed the command (see
// deliver_stop_signals()).
void reexec_with_threading_env(char** argv) {
  if (std::getenv("MMLAB_THREADING_SET")) return;
  ::setenv("MMLAB_THREADING_SET", "1", 1);
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  ::setenv("OPENBLAS_NUM_THREADS", "1", 0);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t before;
  ::sigprocmask(SIG_BLOCK, &stop_signals, &before);
  ::execv("/proc/self/exe", argv);
  // execv only returns on failure: carry on with the defaults.
  ::sigprocmask(SIG_SETMASK, &before, nullptr);
}

void deliver_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);
}

int run(int argc, char** argv) {
  CLI::App app{"mmlab: train and compare MoE-Mamba, Mamba, Transformer-MoE and Transformer models",
               "mmlab"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mmlab 0.1.0");
  Context ctx;
  add_train_command(app, ctx);
  add_launch_command(app, ctx);
  add_validate_command(app, ctx);
  add_models_command(app, ctx);
  add_runs_command(app, ctx);
  add_export_command(app, ctx);
  add_report_command(app, ctx);
  add_generate_commands(app, ctx);
  add_export_model_command(app, ctx);
  add_bench_command(app, ctx);
  add_hosts_command(app, ctx);
  add_remote_command(app, ctx);
  app.footer(
      "Exit codes: 0 ok, 1 failed, 2 usage, 3 bad input, 4 no resource (GPU, memory, disk), "
      "5 diverged.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    deliver_stop_signals();
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  // The command has installed its handlers while parsing (`train` does); a stop signal that came
  // during start-up reaches them now. The fault tests send theirs just before.
  fault_point("start-up-signals-blocked");
  deliver_stop_signals();
  try {
    return ctx.action ? ctx.action() : kExitOk;
  } catch (const UserError& e) {
    write_stderr_line(std::string("mmlab: ") + e.what());
    return e.code();
  } catch (const std::exception& e) {
    // No library's own text (a LibTorch stack trace, SQLite's wording) reaches the user unasked.
    const std::string command = app.get_subcommands().empty()
                                    ? std::string("mmlab")
                                    : "mmlab " + app.get_subcommands().front()->get_name();
    write_stderr_line("mmlab: " + describe_failure(e, "running `" + command + "`"));
    if (debug_enabled()) write_stderr_line(std::string("mmlab: details: ") + e.what());
    return kExitFailure;
  }
}

}  // namespace mmlab::cli
