// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab models [FILE...]`: the parameter table of the paper's presets (or of given files).
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "core/cli/cli.h"
#include "core/config/experiment.h"
#include "core/config/param_count.h"

namespace mmlab::cli {

namespace {

std::string grouped(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

int print_models(const std::vector<std::string>& given) {
  std::vector<std::string> files = given;
  if (files.empty()) {
    for (const auto& e : std::filesystem::directory_iterator(experiments_dir() / "paper")) {
      if (e.path().extension() == ".json") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  }
  std::printf("%-26s %-16s %-9s %4s %5s %7s %15s %15s %15s %15s\n", "run", "family", "pattern", "x",
              "d", "experts", "non-emb total", "non-emb active", "total", "active");
  for (const auto& f : files) {
    Experiment ex = load_experiment(f);
    std::printf("# %s (%s)\n", ex.name.c_str(), f.c_str());
    for (const auto& r : ex.runs) {
      const ParamCounts c = count_params(r.model, expected_vocab_size(r));
      const bool moe = r.model.resolved_pattern().find('E') != std::string::npos;
      std::printf("%-26s %-16s %-9s %4d %5d %7s %15s %15s %15s %15s\n", r.name.c_str(),
                  r.model.family.c_str(), r.model.resolved_pattern().c_str(), r.model.n_block,
                  r.model.d_model, moe ? std::to_string(r.model.n_expert).c_str() : "-",
                  grouped(c.nonembed).c_str(), grouped(c.nonembed_active).c_str(),
                  grouped(c.total).c_str(), grouped(c.active).c_str());
    }
  }
  std::printf(
      "\nnon-emb: without the token embedding and output head (the paper's convention); "
      "active: one expert per MoE layer.\n");
  return 0;
}

}  // namespace

void add_models_command(CLI::App& app, Context& ctx) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = app.add_subcommand(
      "models", "Parameter counts of the paper's models (experiments/paper) or of given files");
  sub->add_option("files", *files, "Experiment files (default: the paper's presets)");
  sub->callback([files, &ctx] { ctx.action = [files] { return print_models(*files); }; });
}

}  // namespace mmlab::cli
