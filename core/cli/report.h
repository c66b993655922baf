// SPDX-License-Identifier: GPL-3.0-or-later
// What `mmlab report`, `mmlab runs` and `mmlab export` compute and print, kept free of LibTorch and
// of CLI11 so that it can be unit-tested over a store filled by hand (tests/core/cli/report_test).
// The speedup is the paper's, as core/results/speedup.h defines it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/store/store.h"

namespace mmlab::cli {

// --- the report ------------------------------------------------------------------------------

/// One run's row of the report table.
struct ReportRow {
  int64_t run_id = 0;
  std::string name;
  std::string family;
  std::string status;  ///< effective status ("lost" for a dead running run)
  int64_t params_active = 0;
  int64_t params_total = 0;
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t tokens = 0;
  std::optional<double> final_loss;  ///< last value of loss_smooth
  std::optional<double> best_val_loss;
  std::optional<double> speedup;  ///< vs the baseline; 1 for the baseline itself
  bool is_baseline = false;
};

/// One experiment's table.
struct ExperimentReport {
  std::string experiment;
  std::string baseline;  ///< the baseline run's name ("" when the experiment has no runs)
  int64_t baseline_id = 0;
  std::vector<ReportRow> rows;  ///< by run id
  /// The baseline's `unigram_entropy` metric (nats): the loss of a model that ignores context.
  std::optional<double> unigram_entropy;
};

/// The baseline `mmlab report` uses when none is named: the first run (lowest id) whose family is
/// "mamba", else the first run. nullopt for an empty list.
std::optional<size_t> default_baseline(const std::vector<store::RunRow>& runs);

/// Builds the report of one experiment from the store. `baseline_name` empty: the default
/// baseline; otherwise the first run with that name, or a UserError listing the run names.
ExperimentReport build_report(store::RunReader& reader, const store::ExperimentRow& experiment,
                              const std::string& baseline_name);

/// Markdown: per experiment a "## name" heading, a line naming the baseline, and a table with the
/// columns name, family, params (active / total), steps ("step/total" while unfinished), tokens,
/// final smoothed loss, best val loss and speedup ("2.50×"). Missing values print as "–".
std::string render_markdown(const std::vector<ExperimentReport>& reports);

/// CSV (RFC 4180, header line): one row per run of every experiment, raw numbers, empty cells for
/// missing values; columns experiment, run, name, family, status, params_active, params_total,
/// step, total_steps, tokens, final_loss_smooth, best_val_loss, speedup, baseline (1 or 0).
std::string render_csv(const std::vector<ExperimentReport>& reports);

// --- formatting shared by the commands ---------------------------------------------------------

/// 1234 -> "1.23K", 45600000 -> "45.6M", 7 -> "7": three significant digits with K/M/B/T.
std::string format_count(double n);
/// Fixed with `decimals` digits, or "–" for nullopt/NaN.
std::string format_fixed(std::optional<double> value, int decimals);
/// The shortest text that reads back as the same double ("nan", "inf" for non-finite values).
std::string format_exact(double value);
/// Local time "YYYY-MM-DD HH:MM:SS" of seconds since the epoch ("" for 0).
std::string format_time(double seconds_since_epoch);
/// A CSV field, quoted (with doubled quotes) when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);
/// Number of terminal columns a UTF-8 string takes (one per code point).
size_t display_width(const std::string& text);
/// Left- or right-aligned plain-text table, columns separated by two spaces, no trailing spaces.
/// An empty header prints no header line.
std::string render_text_table(const std::vector<std::string>& header,
                              const std::vector<std::vector<std::string>>& rows,
                              const std::vector<bool>& right_align);

// --- argument resolution -----------------------------------------------------------------------

/// A run named on the command line: its numeric id, its 32-digit uuid, or a prefix of the uuid
/// (6 to 31 hex digits, not all digits) that only one run's uuid has. Anything else, an ambiguous
/// prefix, or an id that is not in the store, is a UserError naming it.
store::RunRow resolve_run(store::RunReader& reader, const std::string& text);

/// The experiment called `name`, or a UserError listing the experiments there are.
store::ExperimentRow resolve_experiment(store::RunReader& reader, const std::string& name);

}  // namespace mmlab::cli
