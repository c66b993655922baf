// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/experiment.h"

#include <optional>
#include <set>

#include "core/config/config_parse.h"
#include "core/config/json_syntax.h"
#include "core/util/fs.h"

namespace mmlab {

using config_detail::JsonReader;
using nlohmann::json;

namespace {

std::string join_problems(const std::string& origin, const std::vector<std::string>& problems) {
  std::string s = "The config " + origin + " has " + std::to_string(problems.size()) +
                  (problems.size() == 1 ? " problem" : " problems") + " (fix and try again):";
  for (const auto& p : problems) s += "\n  " + p;
  return s;
}

// defaults' section with the run's keys written over it (one level: sections are flat).
json merged_section(const json& defaults, const json& run, const char* key) {
  json out = json::object();
  if (defaults.is_object() && defaults.contains(key) && defaults[key].is_object()) {
    out = defaults[key];
  }
  if (run.is_object() && run.contains(key)) {
    if (!run[key].is_object()) return run[key];  // reported as "must be an object"
    for (auto it = run[key].begin(); it != run[key].end(); ++it) out[it.key()] = it.value();
  }
  return out;
}

// Moves the problems a run's section produced into `problems`. A problem with a key that the
// defaults wrote and the run did not is a problem with the value the run took from the defaults:
// it is reported at the defaults' path, and only once however many runs share it.
void attribute_problems(std::vector<std::string> found, const std::string& run_path,
                        const json& run, const json& defaults, const char* section,
                        std::set<std::string>& from_defaults, std::vector<std::string>& problems) {
  const std::string prefix = run_path + "." + section + ".";
  auto writes = [&](const json& config, const std::string& key) {
    return config.is_object() && config.contains(section) && config[section].is_object() &&
           config[section].contains(key);
  };
  for (std::string& p : found) {
    if (p.compare(0, prefix.size(), prefix) != 0) {
      problems.push_back(std::move(p));
      continue;
    }
    const std::string rest = p.substr(prefix.size());
    const std::string key = rest.substr(0, rest.find_first_of(".[:"));
    if (writes(run, key) || !writes(defaults, key)) {
      problems.push_back(std::move(p));
      continue;
    }
    std::string moved = std::string("$.defaults.") + section + "." + rest;
    if (from_defaults.insert(moved).second) problems.push_back(std::move(moved));
  }
}

}  // namespace

ConfigError::ConfigError(const std::string& origin, std::vector<std::string> problems)
    : UserError(join_problems(origin, problems)), problems_(std::move(problems)) {}

namespace {

// Records where nlohmann's parser gave up, for the rare text whose error the scanner does not
// find itself.
class StopPosition : public nlohmann::json_sax<json> {
 public:
  std::size_t position = 0;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t at, const std::string&,
                   const nlohmann::detail::exception&) override {
    position = at;
    return false;
  }
};

}  // namespace

json parse_json_text(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  std::optional<config_detail::JsonSyntaxError> error = config_detail::find_json_syntax_error(text);
  if (!error) {
    StopPosition stop;
    json::sax_parse(text, &stop);
    // nlohmann counts the offending character as read.
    error = config_detail::position_of(text, stop.position > 0 ? stop.position - 1 : 0);
    error->what = "the text cannot be read as JSON from here on";
  }
  throw UserError(origin + ":" + std::to_string(error->line) + ":" + std::to_string(error->column) +
                  ": not valid JSON: " + error->what + ".");
}

Experiment parse_experiment(const json& j, const std::string& origin) {
  std::vector<std::string> problems;
  Experiment ex;
  ex.source = j;
  if (!j.is_object()) throw ConfigError(origin, {"$: must be an object with \"runs\"."});
  JsonReader top(j, "$", &problems);
  top.read("name", ex.name);
  top.read("description", ex.description);
  const json* defaults = top.section("defaults");
  const json* runs = top.section("runs");
  top.reject_unknown_keys();
  json no_defaults = json::object();
  if (!defaults) defaults = &no_defaults;
  if (!defaults->is_object()) {
    problems.push_back("$.defaults: must be an object with model/train/data sections.");
    defaults = &no_defaults;
  } else {
    JsonReader d(*defaults, "$.defaults", &problems);
    for (const char* section : {"model", "train", "data"}) {
      const json* v = d.section(section);
      if (v && !v->is_object()) d.problem(section, "must be an object.");
    }
    d.reject_unknown_keys();
  }
  if (ex.name.empty()) problems.push_back("$.name: missing; give the experiment a name.");
  if (!runs || !runs->is_array() || runs->empty()) {
    problems.push_back("$.runs: must be a non-empty list of runs.");
    throw ConfigError(origin, problems);
  }

  std::set<std::string> names;
  std::set<std::string> from_defaults;  // problems of the defaults, reported once
  for (size_t i = 0; i < runs->size(); ++i) {
    const json& rj = (*runs)[i];
    const std::string path = "$.runs[" + std::to_string(i) + "]";
    if (!rj.is_object()) {
      problems.push_back(path + ": must be an object.");
      continue;
    }
    RunConfig base;
    JsonReader r(rj, path, &problems);
    config_detail::read_run_fields(r, base);
    r.section("model");
    r.section("train");
    r.section("data");
    const json* seeds = r.section("seeds");
    r.reject_unknown_keys();
    if (base.name.empty()) problems.push_back(path + ".name: missing; give each run a name.");
    std::vector<std::string> found;
    config_detail::read_model(merged_section(*defaults, rj, "model"), path + ".model", base.model,
                              &found);
    attribute_problems(std::move(found), path, rj, *defaults, "model", from_defaults, problems);
    found.clear();
    config_detail::read_train(merged_section(*defaults, rj, "train"), path + ".train", base.train,
                              &found);
    attribute_problems(std::move(found), path, rj, *defaults, "train", from_defaults, problems);
    found.clear();
    config_detail::read_data(merged_section(*defaults, rj, "data"), path + ".data", base.data,
                             &found);
    attribute_problems(std::move(found), path, rj, *defaults, "data", from_defaults, problems);
    std::vector<int64_t> seed_list;
    if (seeds) {
      if (rj.contains("seed")) problems.push_back(path + ".seeds: give seed or seeds, not both.");
      if (!seeds->is_array() || seeds->empty()) {
        problems.push_back(path + ".seeds: must be a non-empty list of integers.");
      } else {
        for (size_t k = 0; k < seeds->size(); ++k) {
          if (!(*seeds)[k].is_number_integer()) {
            problems.push_back(path + ".seeds[" + std::to_string(k) + "]: must be an integer.");
          } else {
            seed_list.push_back((*seeds)[k].get<int64_t>());
          }
        }
      }
    }
    if (seed_list.empty()) {
      if (!names.insert(base.name).second && !base.name.empty()) {
        problems.push_back(path + ".name: \"" + base.name + "\" is used by an earlier run.");
      }
      ex.runs.push_back(base);
    } else {
      for (int64_t s : seed_list) {
        RunConfig rc = base;
        rc.seed = s;
        rc.name = base.name + "/seed-" + std::to_string(s);
        if (!names.insert(rc.name).second) {
          problems.push_back(path + ".name: \"" + rc.name + "\" is used by an earlier run.");
        }
        ex.runs.push_back(rc);
      }
    }
  }
  if (!problems.empty()) throw ConfigError(origin, problems);
  return ex;
}

Experiment load_experiment(const std::filesystem::path& path) {
  std::string text = read_file(path);
  return parse_experiment(parse_json_text(text, path.string()), path.string());
}

}  // namespace mmlab
