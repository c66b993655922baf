// SPDX-License-Identifier: GPL-3.0-or-later
// The `mmlab` command line: every subcommand lives in core/cli.
#include "core/cli/cli.h"

int main(int argc, char** argv) {
  mmlab::cli::reexec_with_threading_env(argv);
  return mmlab::cli::run(argc, argv);
}
