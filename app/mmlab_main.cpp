// SPDX-License-Identifier: GPL-3.0-or-later
// The `mmlab` command line: every subcommand lives in core/cli.
#include "core/cli/cli.h"
#ifdef MMLAB_HAVE_KERNELS
#include "kernels/register.h"
#endif

int main(int argc, char** argv) {
  mmlab::cli::reexec_with_threading_env(argv);
#ifdef MMLAB_HAVE_KERNELS
  mmlab::kernels::register_all();  // the CUDA implementations of the ops, before any command
#endif
  return mmlab::cli::run(argc, argv);
}
