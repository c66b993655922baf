// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <limits>
#include <sstream>

#include "core/results/metric_names.h"
#include "core/results/speedup.h"
#include "core/util/error.h"
#include "core/util/utf8.h"

namespace mmlab::cli {

namespace {

constexpr char kDash[] = "–";  // en dash: "no value", as the paper's tables print it

bool is_digits(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Shorter prefixes would too often be all digits, i.e. read as a run's number.
constexpr size_t kMinUuidPrefix = 6;

bool is_uuid(const std::string& text) {
  if (text.size() != 32) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// A Markdown table cell: a pipe would end the cell and a line break the row.
std::string md_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string pad(const std::string& text, size_t width, bool right) {
  const size_t w = display_width(text);
  if (w >= width) return text;
  const std::string fill(width - w, ' ');
  return right ? fill + text : text + fill;
}

std::string steps_cell(int64_t step, int64_t total) {
  // A finished run shows its step count; an unfinished one how far it got.
  if (total <= 0 || step == total) return std::to_string(step);
  return std::to_string(step) + "/" + std::to_string(total);
}

LossCurve loss_curve(const std::vector<store::PointRow>& points) {
  LossCurve curve;
  curve.tokens.reserve(points.size());
  curve.value.reserve(points.size());
  for (const store::PointRow& p : points) {
    curve.tokens.push_back(static_cast<double>(p.tokens));
    curve.value.push_back(p.value);
  }
  return curve;
}

std::string optional_exact(std::optional<double> value) {
  return value && !std::isnan(*value) ? format_exact(*value) : "";
}

}  // namespace

// --- the report ------------------------------------------------------------------------------

std::optional<size_t> default_baseline(const std::vector<store::RunRow>& runs) {
  if (runs.empty()) return std::nullopt;
  size_t first = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].id < runs[first].id) first = i;
  }
  std::optional<size_t> mamba;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].family == "mamba" && (!mamba || runs[i].id < runs[*mamba].id)) mamba = i;
  }
  return mamba ? *mamba : first;
}

ExperimentReport build_report(store::RunReader& reader, const store::ExperimentRow& experiment,
                              const std::string& baseline_name) {
  ExperimentReport report;
  report.experiment = experiment.name;
  store::RunFilter filter;
  filter.experiment_id = experiment.id;
  const std::vector<store::RunRow> runs = reader.list_runs(filter);  // by id
  if (runs.empty()) return report;

  std::optional<size_t> base;
  if (baseline_name.empty()) {
    base = default_baseline(runs);
  } else {
    for (size_t i = 0; i < runs.size() && !base; ++i) {
      if (runs[i].name == baseline_name) base = i;
    }
    if (!base) {
      std::vector<std::string> names;
      for (const auto& r : runs) names.push_back(r.name);
      throw UserError(
          "The experiment \"" + experiment.name + "\" has no run named \"" + baseline_name +
              "\" to use as the baseline.",
          "Its runs are: " + join(names, ", ") + " (pick the experiment with --experiment).");
    }
  }
  report.baseline = runs[*base].name;
  report.baseline_id = runs[*base].id;
  if (auto pts = reader.points(report.baseline_id, metric::kUnigramEntropy); !pts.empty()) {
    report.unigram_entropy = pts.back().value;
  }

  const LossCurve base_curve = loss_curve(reader.points(runs[*base].id, metric::kLossSmooth));
  for (size_t i = 0; i < runs.size(); ++i) {
    const store::RunRow& run = runs[i];
    ReportRow row;
    row.run_id = run.id;
    row.name = run.name;
    row.family = run.family;
    row.status = std::string(store::to_string(run.effective_status));
    row.params_active = run.params_active;
    row.params_total = run.params_total;
    row.step = run.step;
    row.total_steps = run.total_steps;
    row.tokens = run.tokens;
    row.best_val_loss = run.best_val_loss;
    row.is_baseline = i == *base;
    const LossCurve curve =
        row.is_baseline ? base_curve : loss_curve(reader.points(run.id, metric::kLossSmooth));
    row.final_loss = final_value(curve);
    row.speedup = speedup(base_curve, curve);
    report.rows.push_back(std::move(row));
  }
  return report;
}

std::string render_markdown(const std::vector<ExperimentReport>& reports) {
  const std::vector<std::string> header = {"name",          "family", "params (active / total)",
                                           "steps",         "tokens", "final loss (smoothed)",
                                           "best val loss", "speedup"};
  const std::vector<bool> right = {false, false, true, true, true, true, true, true};
  std::ostringstream out;
  for (size_t r = 0; r < reports.size(); ++r) {
    const ExperimentReport& rep = reports[r];
    if (r) out << "\n";
    out << "## " << rep.experiment << "\n\n";
    if (rep.rows.empty()) {
      out << "No runs.\n";
      continue;
    }
    out << "Baseline: **" << md_cell(rep.baseline) << "** (run " << rep.baseline_id
        << "). Speedup: tokens the baseline needed to reach its final smoothed loss ÷ tokens the "
           "run needed to reach that loss ("
        << kDash << ": never reached).\n\n";

    std::vector<std::vector<std::string>> cells;
    for (const ReportRow& row : rep.rows) {
      std::string speed = kDash;
      if (row.speedup) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.2f×", *row.speedup);
        speed = buf;
        if (row.is_baseline) speed += " (baseline)";
      }
      cells.push_back({md_cell(row.name), md_cell(row.family),
                       format_count(static_cast<double>(row.params_active)) + " / " +
                           format_count(static_cast<double>(row.params_total)),
                       steps_cell(row.step, row.total_steps),
                       format_count(static_cast<double>(row.tokens)),
                       format_fixed(row.final_loss, 4), format_fixed(row.best_val_loss, 4), speed});
    }
    std::vector<size_t> width(header.size(), 3);  // "---" is the shortest delimiter cell
    for (size_t c = 0; c < header.size(); ++c) {
      width[c] = std::max(width[c], display_width(header[c]));
      for (const auto& line : cells) width[c] = std::max(width[c], display_width(line[c]));
    }
    auto emit = [&](const std::vector<std::string>& line) {
      out << "|";
      for (size_t c = 0; c < line.size(); ++c)
        out << " " << pad(line[c], width[c], right[c]) << " |";
      out << "\n";
    };
    emit(header);
    out << "|";
    for (size_t c = 0; c < header.size(); ++c) {
      out << " " << (right[c] ? std::string(width[c] - 1, '-') + ":" : std::string(width[c], '-'))
          << " |";
    }
    out << "\n";
    for (const auto& line : cells) emit(line);
    if (rep.unigram_entropy) {
      out << "\nUnigram entropy of the baseline's training tokens: "
          << format_fixed(rep.unigram_entropy, 4)
          << " nats (the loss of a model that ignores context).\n";
    }
  }
  return out.str();
}

std::string render_csv(const std::vector<ExperimentReport>& reports) {
  std::ostringstream out;
  out << "experiment,run,name,family,status,params_active,params_total,step,total_steps,tokens,"
         "final_loss_smooth,best_val_loss,speedup,baseline\n";
  for (const ExperimentReport& rep : reports) {
    for (const ReportRow& row : rep.rows) {
      out << csv_field(rep.experiment) << ',' << row.run_id << ',' << csv_field(row.name) << ','
          << csv_field(row.family) << ',' << row.status << ',' << row.params_active << ','
          << row.params_total << ',' << row.step << ',' << row.total_steps << ',' << row.tokens
          << ',' << optional_exact(row.final_loss) << ',' << optional_exact(row.best_val_loss)
          << ',' << optional_exact(row.speedup) << ',' << (row.is_baseline ? 1 : 0) << '\n';
    }
  }
  return out.str();
}

// --- formatting ----------------------------------------------------------------------------------

std::string format_count(double n) {
  if (std::isnan(n)) return kDash;
  const double a = std::fabs(n);
  char buf[64];
  if (a < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f", n);
    return buf;
  }
  static constexpr const char* kUnits[] = {"K", "M", "B", "T"};
  double scaled = n / 1000;
  size_t unit = 0;
  // 999,950 is "1.00M", not "1000K": move up a unit when rounding would reach 1000.
  while (unit + 1 < std::size(kUnits) && std::fabs(scaled) >= 999.5) {
    scaled /= 1000;
    ++unit;
  }
  const double s = std::fabs(scaled);
  const int decimals = s < 9.995 ? 2 : s < 99.95 ? 1 : 0;
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, scaled, kUnits[unit]);
  return buf;
}

std::string format_fixed(std::optional<double> value, int decimals) {
  if (!value || std::isnan(*value)) return kDash;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *value);
  return buf;
}

std::string format_exact(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

std::string format_time(double seconds_since_epoch) {
  if (seconds_since_epoch <= 0) return "";
  const std::time_t t = static_cast<std::time_t>(seconds_since_epoch);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

size_t display_width(const std::string& text) {
  return count_code_points(text);
}

std::string render_text_table(const std::vector<std::string>& header,
                              const std::vector<std::vector<std::string>>& rows,
                              const std::vector<bool>& right_align) {
  const size_t columns = !header.empty() ? header.size() : rows.empty() ? 0 : rows[0].size();
  std::vector<size_t> width(columns, 0);
  for (size_t c = 0; c < columns; ++c) {
    if (c < header.size()) width[c] = display_width(header[c]);
    for (const auto& row : rows) width[c] = std::max(width[c], display_width(row[c]));
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& line) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      const bool right = c < right_align.size() && right_align[c];
      text += (c ? "  " : "") + pad(line[c], width[c], right);
    }
    // The last column is left-aligned padding: drop it so lines do not end in spaces.
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  if (!header.empty()) emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

// --- argument resolution -----------------------------------------------------------------------

store::RunRow resolve_run(store::RunReader& reader, const std::string& text) {
  if (is_digits(text) && text.size() <= 18) {
    // A run's number first; digits that number no run may still begin a uuid (a uuid's first
    // eight hex digits are all decimal digits about once in 43).
    if (auto run = reader.find_run(std::stoll(text))) return *run;
    if (text.size() < kMinUuidPrefix) return reader.get_run(std::stoll(text));  // its error
  }
  if (is_uuid(text)) {
    if (auto run = reader.find_run_by_uuid(text)) return *run;
    throw UserError(
        "No run with uuid " + text + " in the results database " + reader.path().string() + ".",
        "List the runs with `mmlab runs list`.");
  }
  const bool hex_prefix = text.size() >= kMinUuidPrefix && text.size() < 32 &&
                          std::all_of(text.begin(), text.end(), [](char c) {
                            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                          });
  if (hex_prefix) {
    std::vector<store::RunRow> matches;
    for (auto& r : reader.list_runs()) {
      if (r.uuid.compare(0, text.size(), text) == 0) matches.push_back(std::move(r));
    }
    if (matches.size() == 1) return matches.front();
    if (matches.empty()) {
      throw UserError("No run's uuid begins with " + text + " in the results database " +
                          reader.path().string() + ".",
                      "List the runs with `mmlab runs list --format json`.");
    }
    std::vector<std::string> ids;
    for (const auto& r : matches) ids.push_back(std::to_string(r.id));
    throw UserError("The uuids of runs " + join(ids, ", ") + " all begin with " + text + ".",
                    "Give more digits of the uuid, or the run's number.");
  }
  throw UserError("\"" + text + "\" is not a run id.",
                  "Give a run's number as `mmlab runs list` shows it, its 32-digit uuid, or the "
                  "uuid's first digits (at least " +
                      std::to_string(kMinUuidPrefix) + ").");
}

store::ExperimentRow resolve_experiment(store::RunReader& reader, const std::string& name) {
  if (auto e = reader.find_experiment(name)) return *e;
  std::vector<std::string> names;
  for (const auto& e : reader.list_experiments()) names.push_back("\"" + e.name + "\"");
  throw UserError(
      "No experiment \"" + name + "\" in the results database " + reader.path().string() + ".",
      names.empty() ? "It has no experiments yet; train one with `mmlab train FILE`."
                    : "Its experiments are: " + join(names, ", ") + ".");
}

}  // namespace mmlab::cli
