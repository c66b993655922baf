// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab validate FILE`: every problem with its JSON path, or a summary of the runs.
#include <cstdio>
#include <iostream>

#include "core/cli/cli.h"
#include "core/config/config_fields.h"
#include "core/config/experiment.h"
#include "core/config/param_count.h"
#include "core/models/op_choice.h"

namespace mmlab::cli {

namespace {

// Every field of a run config as the declaration has it: key, default, rule, meaning.
void print_fields() {
  for (const FieldInfo& f : run_config_fields()) {
    const std::string rule = f.rule.describe();
    std::printf("%-22s %-12s %-32s %s\n", f.key.c_str(), f.default_value.dump().c_str(),
                rule.empty() ? "-" : rule.c_str(), f.doc.c_str());
  }
}

}  // namespace

void add_validate_command(CLI::App& app, Context& ctx) {
  auto file = std::make_shared<std::string>();
  auto fields = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("validate", "Check an experiment file and list its runs");
  sub->add_option("file", *file, "Experiment file (JSON)");
  sub->add_flag("--fields", *fields,
                "List every config field instead: key, default, rule and meaning");
  sub->callback([file, fields, &ctx] {
    if (*fields) {
      ctx.action = [] {
        print_fields();
        return 0;
      };
      return;
    }
    ctx.action = [file] {
      if (file->empty()) {
        throw UserError("mmlab validate needs an experiment file.",
                        "Give FILE, or --fields to list the config fields.", kExitUsage);
      }
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
