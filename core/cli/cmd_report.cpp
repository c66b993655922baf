// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab report`: per experiment, each run's final smoothed loss and the paper's speedup over a
// baseline run (the computation and the tables are in report.cpp).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "core/cli/report.h"
#include "core/store/store.h"
#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> experiments;
  std::string baseline;
  std::string format = "md";
  std::string out;
};

int report(const Context& ctx, const ReportOptions& o) {
  store::OpenOptions options;
  options.mode = store::Database::Mode::kReadOnly;
  store::ResultsStore db(ctx.db_path(), options);

  std::vector<store::ExperimentRow> experiments;
  if (o.experiments.empty()) {
    // Every experiment that has runs: one whose runs were all deleted would be an empty table.
    for (auto& e : db.reader().list_experiments()) {
      store::RunFilter filter;
      filter.experiment_id = e.id;
      if (!db.reader().list_runs(filter).empty()) experiments.push_back(std::move(e));
    }
    if (experiments.empty()) {
      throw UserError("The results database " + db.path().string() + " has no runs yet.",
                      "Train some with `mmlab train FILE`, or point --db at another database.");
    }
  } else {
    for (const auto& name : o.experiments)
      experiments.push_back(resolve_experiment(db.reader(), name));
  }

  std::vector<ExperimentReport> reports;
  for (const auto& e : experiments) reports.push_back(build_report(db.reader(), e, o.baseline));
  const std::string text = o.format == "csv" ? render_csv(reports) : render_markdown(reports);
  if (o.out.empty()) {
    std::cout << text;
  } else {
    write_file_atomically(o.out, text);
  }
  return kExitOk;
}

}  // namespace

void add_report_command(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report",
      "Per experiment: each run's final smoothed loss and its speedup over a baseline run");
  add_db_option(sub, ctx);
  sub->add_option("--experiment", o->experiments,
                  "Only this experiment (repeatable; default: every experiment with runs)")
      ->allow_extra_args(false);
  sub->add_option("--baseline", o->baseline,
                  "Name of the baseline run (default: the first run of family mamba, else the "
                  "first run)");
  sub->add_option("--format", o->format, "md (Markdown, default) or csv")
      ->check(CLI::IsMember({"md", "csv"}));
  sub->add_option("--out", o->out, "Write to this file (atomically) instead of stdout");
  sub->callback([&ctx, o] { ctx.action = [&ctx, o] { return report(ctx, *o); }; });
}

}  // namespace mmlab::cli
