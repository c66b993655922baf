// SPDX-License-Identifier: GPL-3.0-or-later
// The `mmlab` command line. Each subcommand lives in its own cmd_*.cpp and registers itself on the
// CLI11 app; run() parses, runs the chosen command and turns errors into one line and an exit code
// (docs/cli.md lists them).
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <string>

namespace mmlab::cli {

/// Shared by every subcommand.
struct Context {
  std::string db;               ///< --db; empty = default_db_path()
  std::function<int()> action;  ///< set by the chosen subcommand's callback
  std::filesystem::path db_path() const;
};

int run(int argc, char** argv);

/// Starts this process again with OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1 unless they
/// were set (see cli.cpp for why). Called first thing in main(), never by tests.
void reexec_with_threading_env(char** argv);

// Registration, one per command file.
void add_train_command(CLI::App& app, Context& ctx);
void add_launch_command(CLI::App& app, Context& ctx);
void add_validate_command(CLI::App& app, Context& ctx);
void add_models_command(CLI::App& app, Context& ctx);
void add_runs_command(CLI::App& app, Context& ctx);
void add_export_command(CLI::App& app, Context& ctx);
void add_report_command(CLI::App& app, Context& ctx);
void add_generate_commands(CLI::App& app, Context& ctx);  // generate, score
void add_export_model_command(CLI::App& app, Context& ctx);
void add_bench_command(CLI::App& app, Context& ctx);
void add_hosts_command(CLI::App& app, Context& ctx);
void add_remote_command(CLI::App& app, Context& ctx);  // remote, info

/// Adds --db to a subcommand.
void add_db_option(CLI::App* sub, Context& ctx);

/// The folder holding the project's experiments/ (next to the binary's source tree or installed).
std::filesystem::path experiments_dir();

}  // namespace mmlab::cli
