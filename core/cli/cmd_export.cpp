// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab export`: metric curves in long format (run, metric, step, tokens, wall, value), one line
// per point, for pandas, R or a spreadsheet. Points are streamed in chunks, so exporting a whole
// experiment does not hold its curves in memory; --out writes through a temporary file that is
// renamed into place only when complete.
#include <cmath>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/cli/report.h"
#include "core/store/store.h"
#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

namespace mmlab::cli {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::vector<std::string> runs;
  std::string experiment;
  std::string format = "csv";
  std::vector<std::string> metrics;
  std::string out;
};

// Collects output text and hands it on in chunks of about a megabyte.
class ChunkWriter {
 public:
  explicit ChunkWriter(std::function<void(const std::string&)> sink) : sink_(std::move(sink)) {}
  void write(const std::string& text) {
    buffer_ += text;
    if (buffer_.size() >= (1u << 20)) flush();
  }
  void flush() {
    if (!buffer_.empty()) sink_(buffer_);
    buffer_.clear();
  }

 private:
  std::function<void(const std::string&)> sink_;
  std::string buffer_;
};

// Writes the selected points in `format` to `out`.
void write_points(store::RunReader& reader, const std::vector<store::RunRow>& runs,
                  const std::vector<std::string>& metrics, const std::string& format,
                  ChunkWriter& out) {
  const bool csv = format == "csv";
  bool first = true;
  if (csv) out.write("run,metric,step,tokens,wall,value\n");
  if (format == "json") out.write("[\n");
  std::string metric_text;  // the metric as it appears in a line (CSV field or JSON string)
  std::string last_metric;
  std::string line;
  for (const auto& run : runs) {
    const std::string run_text = std::to_string(run.id);
    auto emit = [&](const std::string& metric, const store::PointRow& p) {
      if (metric != last_metric || first) {
        metric_text = csv ? csv_field(metric) : nlohmann::json(metric).dump();
        last_metric = metric;
      }
      const bool nan = std::isnan(p.value);
      if (csv) {
        // A NaN (a diverged step) is an empty cell, which CSV readers take as missing.
        line = run_text + "," + metric_text + "," + std::to_string(p.step) + "," +
               std::to_string(p.tokens) + "," + format_exact(p.wall) + "," +
               (nan ? "" : format_exact(p.value)) + "\n";
      } else {
        line = (format == "json" && !first ? ",\n" : "");
        line += "{\"run\":" + run_text + ",\"metric\":" + metric_text +
                ",\"step\":" + std::to_string(p.step) + ",\"tokens\":" + std::to_string(p.tokens) +
                ",\"wall\":" + format_exact(p.wall) +
                ",\"value\":" + (nan ? "null" : format_exact(p.value)) + "}";
        if (format == "jsonl") line += "\n";
      }
      first = false;
      out.write(line);
    };
    if (metrics.empty()) {
      reader.for_each_point(run.id, emit);
    } else {
      for (const auto& m : metrics) {
        for (const auto& p : reader.points(run.id, m)) emit(m, p);
      }
    }
  }
  if (format == "json") out.write(first ? "]\n" : "\n]\n");
  out.flush();
}

int export_points(const Context& ctx, const ExportOptions& o) {
  if (o.runs.empty() == o.experiment.empty()) {
    throw UserError(o.runs.empty() ? "Nothing to export was named."
                                   : "Name either runs or --experiment, not both.",
                    "Give run ids (`mmlab export 3 4`) or an experiment (`mmlab export "
                    "--experiment NAME`).",
                    kExitUsage);
  }
  store::OpenOptions options;
  options.mode = store::Database::Mode::kReadOnly;
  store::ResultsStore db(ctx.db_path(), options);

  std::vector<store::RunRow> runs;
  if (!o.experiment.empty()) {
    store::RunFilter filter;
    filter.experiment_id = resolve_experiment(db.reader(), o.experiment).id;
    runs = db.reader().list_runs(filter);
  } else {
    std::set<int64_t> seen;
    for (const auto& t : o.runs) {
      store::RunRow r = resolve_run(db.reader(), t);
      if (seen.insert(r.id).second) runs.push_back(std::move(r));
    }
  }

  // Each --metric once, in the order given; a name no selected run has is most likely a typo.
  std::vector<std::string> metrics;
  if (!o.metrics.empty()) {
    std::set<std::string> available;
    for (const auto& r : runs) {
      for (auto& m : db.reader().metric_names(r.id)) available.insert(std::move(m));
    }
    std::set<std::string> chosen;
    for (const auto& m : o.metrics) {
      if (!available.count(m)) {
        std::string names;
        for (const auto& a : available) names += (names.empty() ? "" : ", ") + a;
        throw UserError("No selected run has the metric \"" + m + "\".",
                        available.empty() ? "The selected runs have no metrics yet."
                                          : "Their metrics are: " + names + ".");
      }
      if (chosen.insert(m).second) metrics.push_back(m);
    }
  }

  if (o.out.empty()) {
    ChunkWriter writer([](const std::string& chunk) { std::cout << chunk; });
    write_points(db.reader(), runs, metrics, o.format, writer);
    std::cout.flush();
    return kExitOk;
  }
  const fs::path out = o.out;
  FileWriter file(out);
  ChunkWriter writer([&](const std::string& chunk) { file.write(chunk); });
  write_points(db.reader(), runs, metrics, o.format, writer);
  file.commit();
  return kExitOk;
}

}  // namespace

void add_export_command(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* sub = app.add_subcommand(
      "export", "Export metric curves in long format: run, metric, step, tokens, wall, value");
  add_db_option(sub, ctx);
  sub->add_option("runs", o->runs, "Run ids or uuids (or use --experiment)");
  sub->add_option("--experiment", o->experiment, "Export every run of this experiment");
  sub->add_option("--format", o->format,
                  "csv (default, with a header line), json (one array of objects) or jsonl (one "
                  "object per line)")
      ->check(CLI::IsMember({"csv", "json", "jsonl"}));
  // One value per --metric, so `--metric loss 3` leaves 3 as a run id.
  sub->add_option("--metric", o->metrics, "Only this metric (repeatable; default: all)")
      ->allow_extra_args(false);
  sub->add_option("--out", o->out, "Write to this file (atomically) instead of stdout");
  sub->callback([&ctx, o] { ctx.action = [&ctx, o] { return export_points(ctx, *o); }; });
}

}  // namespace mmlab::cli
