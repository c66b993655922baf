// SPDX-License-Identifier: GPL-3.0-or-later
// Side-by-side comparison of run configs: each config is flattened to dotted keys
// ("model.d_model") and the union of keys becomes the rows, flagged where the values differ. The
// rows follow the fields' declaration (core/config/config_fields.h) and carry their meaning; a key
// it does not have (a config written by another version) follows in key order.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mmlab::ui {

/// Dotted key → compact JSON text of the leaf value; arrays are leaves ("[1,2]").
std::map<std::string, std::string> flatten_json(const nlohmann::json& j);

struct DiffRow {
  std::string key;
  std::vector<std::string> values;  ///< one per config; "—" where a config lacks the key
  bool differs = false;
  std::string doc;  ///< what the field means; "" for a key the declaration does not have
};

/// Rows in declaration order; `only_differences` keeps the rows where some value differs.
std::vector<DiffRow> diff_configs(const std::vector<nlohmann::json>& configs,
                                  bool only_differences = false);

}  // namespace mmlab::ui
