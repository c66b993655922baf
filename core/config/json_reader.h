// SPDX-License-Identifier: GPL-3.0-or-later
// Reads typed fields out of a JSON object while recording every problem with its JSON path, so a
// config with five mistakes gets five messages in one go. Internal to core/config.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace mmlab::config_detail {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& object, std::string path, std::vector<std::string>* problems);

  void read(const char* key, int& out);
  void read(const char* key, int64_t& out);
  void read(const char* key, double& out);
  void read(const char* key, bool& out);
  void read(const char* key, std::string& out);

  /// Declares a key read by other means (a nested section), so it is not "unknown".
  const nlohmann::json* section(const char* key) { return find(key); }

  /// Records a problem at this object's path (`key` appended when given).
  void problem(const std::string& key, const std::string& what);

  /// After all reads: every key that no read asked for is a problem listing the valid keys.
  void reject_unknown_keys();

  std::string path_of(const std::string& key) const { return path_ + "." + key; }

 private:
  const nlohmann::json* find(const char* key);
  /// The value at `key` when present and `is_type` accepts it; a present value it refuses is a
  /// problem worded "`must_be`, got <type> (<value>).", and gives nullptr like an absent one.
  const nlohmann::json* find_typed(const char* key, bool (*is_type)(const nlohmann::json&),
                                   const char* must_be);

  const nlohmann::json& object_;
  std::string path_;
  std::vector<std::string>* problems_;
  std::set<std::string> known_;
};

}  // namespace mmlab::config_detail
