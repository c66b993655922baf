// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/json_reader.h"

#include <cmath>
#include <limits>

namespace mmlab::config_detail {

namespace {

std::string type_name(const nlohmann::json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

}  // namespace

JsonReader::JsonReader(const nlohmann::json& object, std::string path,
                       std::vector<std::string>* problems)
    : object_(object), path_(std::move(path)), problems_(problems) {}

const nlohmann::json* JsonReader::find(const char* key) {
  known_.insert(key);
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

void JsonReader::problem(const std::string& key, const std::string& what) {
  problems_->push_back((key.empty() ? path_ : path_of(key)) + ": " + what);
}

const nlohmann::json* JsonReader::find_typed(const char* key,
                                             bool (*is_type)(const nlohmann::json&),
                                             const char* must_be) {
  const nlohmann::json* v = find(key);
  if (!v || is_type(*v)) return v;
  problem(key, std::string(must_be) + ", got " + type_name(*v) + " (" + v->dump() + ").");
  return nullptr;
}

void JsonReader::read(const char* key, int64_t& out) {
  // 1e6 written in scientific notation is an integer too.
  auto integral = [](const nlohmann::json& v) {
    return v.is_number_integer() ||
           (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
            std::fabs(v.get<double>()) < 9e15);
  };
  const nlohmann::json* v = find_typed(key, integral, "must be an integer");
  if (!v) return;
  out = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(v->get<double>());
}

void JsonReader::read(const char* key, int& out) {
  int64_t wide = out;
  size_t before = problems_->size();
  read(key, wide);
  if (problems_->size() != before) return;
  if (wide > std::numeric_limits<int>::max() || wide < std::numeric_limits<int>::min()) {
    problem(key, "is out of range (" + std::to_string(wide) + ").");
    return;
  }
  out = static_cast<int>(wide);
}

void JsonReader::read(const char* key, double& out) {
  auto ok = [](const nlohmann::json& v) { return v.is_number(); };
  if (const nlohmann::json* v = find_typed(key, ok, "must be a number")) out = v->get<double>();
}

void JsonReader::read(const char* key, bool& out) {
  auto ok = [](const nlohmann::json& v) { return v.is_boolean(); };
  if (const nlohmann::json* v = find_typed(key, ok, "must be true or false")) out = v->get<bool>();
}

void JsonReader::read(const char* key, std::string& out) {
  auto ok = [](const nlohmann::json& v) { return v.is_string(); };
  if (const nlohmann::json* v = find_typed(key, ok, "must be a string"))
    out = v->get<std::string>();
}

void JsonReader::reject_unknown_keys() {
  if (!object_.is_object()) return;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (known_.count(it.key())) continue;
    std::string valid;
    for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
    problem(it.key(), "unknown key. Valid keys here: " + valid + ".");
  }
}

}  // namespace mmlab::config_detail
