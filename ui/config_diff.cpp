// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/config_diff.h"

#include <set>

#include "core/config/config_fields.h"

namespace mmlab::ui {

namespace {

void flatten_into(const nlohmann::json& j, const std::string& prefix,
                  std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten_into(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  out[prefix.empty() ? "$" : prefix] = j.is_string() ? j.get<std::string>() : j.dump();
}

}  // namespace

std::map<std::string, std::string> flatten_json(const nlohmann::json& j) {
  std::map<std::string, std::string> out;
  flatten_into(j, "", out);
  return out;
}

std::vector<DiffRow> diff_configs(const std::vector<nlohmann::json>& configs,
                                  bool only_differences) {
  std::vector<std::map<std::string, std::string>> flat;
  std::set<std::string> keys;
  for (const auto& c : configs) {
    flat.push_back(flatten_json(c));
    for (const auto& [k, v] : flat.back()) keys.insert(k);
  }
  // The declared fields in their order, then the keys the declaration does not have. A per-op
  // choice (train.ops.selective_scan) sits where train.ops is declared.
  std::vector<std::pair<std::string, std::string>> ordered;  // key, meaning
  for (const FieldInfo& f : run_config_fields()) {
    if (keys.erase(f.key)) ordered.emplace_back(f.key, f.doc);
    const std::string nested = f.key + ".";
    for (auto it = keys.lower_bound(nested); it != keys.end() && it->rfind(nested, 0) == 0;) {
      ordered.emplace_back(*it, f.doc);
      it = keys.erase(it);
    }
  }
  for (const std::string& k : keys) ordered.emplace_back(k, "");
  std::vector<DiffRow> rows;
  for (const auto& [k, doc] : ordered) {
    DiffRow row;
    row.key = k;
    row.doc = doc;
    for (const auto& f : flat) {
      auto it = f.find(k);
      row.values.push_back(it == f.end() ? "—" : it->second);
    }
    for (size_t i = 1; i < row.values.size(); ++i) row.differs |= row.values[i] != row.values[0];
    if (!only_differences || row.differs) rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace mmlab::ui
