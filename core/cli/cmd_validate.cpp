// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab validate FILE`: every problem with its JSON path, or a summary of the runs.
#include <cstdio>
#include <iostream>

#include "core/cli/cli.h"
#include "core/config/experiment.h"
#include "core/config/param_count.h"
#include "core/models/op_choice.h"

namespace mmlab::cli {

void add_validate_command(CLI::App& app, Context& ctx) {
  auto file = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("validate", "Check an experiment file and list its runs");
  sub->add_option("file", *file, "Experiment file (JSON)")->required();
  sub->callback([file, &ctx] {
    ctx.action = [file] {
      Experiment ex = load_experiment(*file);
      for (const auto& r : ex.runs) check_ops_choice(r);
      std::cout << *file << ": OK, experiment \"" << ex.name << "\", " << ex.runs.size()
                << (ex.runs.size() == 1 ? " run\n" : " runs\n");
      for (const auto& r : ex.runs) {
        const ParamCounts c = count_params(r.model);
        std::printf(
            "  %-28s %-18s steps %-7lld tokens/step %-8lld non-embedding params %lld (active "
            "%lld)\n",
            r.name.c_str(), r.model.family.c_str(),
            static_cast<long long>(r.train.resolved_steps()),
            static_cast<long long>(r.train.tokens_per_step()), static_cast<long long>(c.nonembed),
            static_cast<long long>(c.nonembed_active));
      }
      return 0;
    };
  });
}

}  // namespace mmlab::cli
