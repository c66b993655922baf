// SPDX-License-Identifier: GPL-3.0-or-later
// Experiment files: JSON naming one or more runs. Loading validates everything at once and reports
// every error with its JSON path, e.g. "$.runs[1].model.d_model: must be > 0, got -3".
//
//   { "name": "quick-compare", "description": "...",
//     "defaults": { "model": {...}, "train": {...}, "data": {...} },
//     "runs": [ { "name": "moe-mamba", "model": { "family": "moe-mamba" }, "seeds": [1, 2] } ] }
//
// A run's sections are the defaults' sections with the run's keys written over them; "seed" or
// "seeds" (a list: one run per seed, named NAME/seed-S) set the seed.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/util/error.h"

namespace mmlab {

/// Every problem found in a config, each "JSON path: what is wrong and what to do".
class ConfigError : public UserError {
 public:
  ConfigError(const std::string& origin, std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

struct Experiment {
  std::string name;
  std::string description;
  std::vector<RunConfig> runs;
  nlohmann::json source;  ///< the file as written
};

/// Parses and validates an experiment; `origin` names it in messages (a file path).
Experiment parse_experiment(const nlohmann::json& j, const std::string& origin);

/// Reads FILE (a missing file, malformed JSON: UserError naming it and the place) and parses it.
Experiment load_experiment(const std::filesystem::path& path);

/// Parses text that should hold JSON. Malformed JSON is a UserError of one sentence,
/// "ORIGIN:LINE:COLUMN: not valid JSON: what is wrong, in plain words." (no hint).
nlohmann::json parse_json_text(const std::string& text, const std::string& origin);

}  // namespace mmlab
