// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/config.h"

#include <optional>
#include <type_traits>

#include "core/config/config_fields.h"
#include "core/config/config_parse.h"
#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/util/error.h"

namespace mmlab {

using config_detail::JsonReader;
using nlohmann::json;

std::string ModelConfig::resolved_pattern() const {
  return pattern.empty() ? family_pattern(family) : pattern;
}

int64_t TrainConfig::resolved_steps() const {
  if (steps > 0) return steps;
  return tokens_per_step() > 0 ? tokens / tokens_per_step() : 0;
}

namespace config_detail {

namespace {

// train.ops: a name, or an object of op name -> name. Which ops and implementations exist is
// known only to a build with the ops (core/models/op_choice.h checks that before a run).
void read_ops(JsonReader& r, const char* key, OpsConfig& c) {
  const json* v = r.section(key);
  if (!v) return;
  const char* form =
      "must be an implementation name (\"auto\", \"reference\", \"cuda\", ...) or an object "
      "naming one per op, e.g. {\"selective_scan\": \"cuda\"}";
  if (v->is_string()) {
    c.all = v->get<std::string>();
    c.per_op.clear();
    if (c.all.empty()) r.problem(key, std::string(form) + ", got \"\".");
    return;
  }
  if (!v->is_object()) {
    r.problem(key, std::string(form) + ", got " + v->dump() + ".");
    return;
  }
  c.all = "auto";
  c.per_op.clear();
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string() || it.value().get<std::string>().empty()) {
      r.problem(std::string(key) + "." + it.key(),
                "must be an implementation name, got " + it.value().dump() + ".");
      continue;
    }
    c.per_op[it.key()] = it.value().get<std::string>();
  }
}

// Reads the value of every declared key that the object has.
class FieldReader {
 public:
  explicit FieldReader(JsonReader& r) : r_(r) {}
  template <class T>
  void field(const char* key, T& member, const FieldRule&, const char*) {
    r_.read(key, member);
  }
  void field(const char* key, OpsConfig& member, const FieldRule&, const char*) {
    read_ops(r_, key, member);
  }
  template <class T, class C>
  void field(const char* key, T& member, const FieldRule& rule, const char* doc, T (C::*)() const) {
    field(key, member, rule, doc);
  }

 private:
  JsonReader& r_;
};

// Checks every value against its field's rule.
class FieldChecker {
 public:
  explicit FieldChecker(JsonReader& r) : r_(r) {}
  template <class T>
  void field(const char* key, const T& member, const FieldRule& rule, const char*) {
    std::optional<std::string> problem;
    if constexpr (std::is_same_v<T, std::string>) {
      problem = rule.check(member);
    } else if constexpr (std::is_same_v<T, double>) {
      // As the user wrote it: -1, not -1.0.
      std::string shown = json(member).dump();
      if (shown.size() > 2 && shown.compare(shown.size() - 2, 2, ".0") == 0)
        shown.resize(shown.size() - 2);
      problem = rule.check(member, shown);
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      problem = rule.check(double(member), std::to_string(member));
    }
    if (problem) r_.problem(key, *problem);
  }
  template <class T, class C>
  void field(const char* key, const T& member, const FieldRule& rule, const char* doc,
             T (C::*)() const) {
    field(key, member, rule, doc);
  }

 private:
  JsonReader& r_;
};

// The rules between fields of one section.
void check_between_fields(JsonReader& r, const ModelConfig& c) {
  if (!(c.dt_min > 0 && c.dt_min <= c.dt_max)) {
    r.problem("dt_min", "must satisfy 0 < dt_min <= dt_max.");
  }
  try {
    std::vector<LayerSpec> unit = parse_pattern(c.resolved_pattern());
    for (const LayerSpec& s : unit) {
      if (s.kind == LayerKind::kAttention && c.head_dim > 0 && c.d_model % c.head_dim != 0) {
        r.problem("d_model", "must be a multiple of head_dim (" + std::to_string(c.head_dim) +
                                 ") for attention layers, got " + std::to_string(c.d_model) + ".");
        break;
      }
      if (s.kind == LayerKind::kAttention && c.head_dim % 2 != 0) {
        r.problem("head_dim", "must be even for rotary embeddings.");
        break;
      }
    }
  } catch (const UserError& e) {
    r.problem(c.pattern.empty() ? "family" : "pattern", e.what());
  }
}

void check_between_fields(JsonReader& r, const TrainConfig& c) {
  if (c.steps > 0 && c.tokens > 0) {
    r.problem("tokens", "give either steps or tokens as the budget, not both.");
  }
  if (c.batch_size > 0 && c.seq_len > 0 && c.grad_accum > 0 && c.resolved_steps() <= 0) {
    r.problem("steps", "the budget is zero steps; set steps > 0 or tokens >= one step's " +
                           std::to_string(c.tokens_per_step()) + " tokens.");
  }
  if (!(c.device == "cpu" || c.device == "cuda" || c.device.rfind("cuda:", 0) == 0)) {
    r.problem("device", "must be cpu, cuda or cuda:N, got \"" + c.device + "\".");
  }
}

// These are the rules the corpus is prepared by (core/data): what passes here trains.
void check_between_fields(JsonReader& r, const DataConfig& c) {
  if (c.tokenizer == "sentencepiece" && c.tokenizer_path.empty() &&
      !(c.tokenizer_vocab >= 64 && c.tokenizer_vocab <= 1'000'000)) {
    r.problem("tokenizer_vocab", "must be between 64 and 1000000, got " +
                                     std::to_string(c.tokenizer_vocab) + " (e.g. 8192).");
  }
}

// One section: its declared keys read, unknown keys rejected, then every rule checked.
template <class Config>
void read_section(const json& j, const std::string& path, Config& c,
                  std::vector<std::string>* problems) {
  if (!j.is_object()) {
    problems->push_back(path + ": must be an object.");
    return;
  }
  JsonReader r(j, path, problems);
  FieldReader reader(r);
  fields(reader, c);
  r.reject_unknown_keys();
  FieldChecker checker(r);
  fields(checker, c);
  check_between_fields(r, c);
}

// Writes every field; a field stored resolved is written as the value the run uses.
template <class Config>
class FieldWriter {
 public:
  explicit FieldWriter(const Config& c) : config_(c) {}
  template <class T>
  void field(const char* key, const T& member, const FieldRule&, const char*) {
    out[key] = member;
  }
  void field(const char* key, const OpsConfig& member, const FieldRule&, const char*) {
    out[key] = to_json(member);
  }
  template <class T, class C>
  void field(const char* key, const T&, const FieldRule&, const char*, T (C::*resolved)() const) {
    out[key] = (config_.*resolved)();
  }
  json out = json::object();

 private:
  const Config& config_;
};

template <class Config>
json write_section(const Config& c) {
  FieldWriter<Config> writer(c);
  fields(writer, c);
  return writer.out;
}

// Lists the declarations of one section under "section.".
class FieldLister {
 public:
  FieldLister(std::string prefix, std::vector<FieldInfo>& out)
      : prefix_(std::move(prefix)), out_(out) {}
  template <class T>
  void field(const char* key, const T& member, const FieldRule& rule, const char* doc) {
    out_.push_back(FieldInfo{prefix_ + key, doc, rule, value_json(member)});
  }
  template <class T, class C>
  void field(const char* key, const T& member, const FieldRule& rule, const char* doc,
             T (C::*)() const) {
    field(key, member, rule, doc);
  }

 private:
  std::string prefix_;
  std::vector<FieldInfo>& out_;
};

}  // namespace

void read_run_fields(JsonReader& r, RunConfig& c) {
  FieldReader reader(r);
  fields(reader, c);
  FieldChecker checker(r);
  fields(checker, c);
}

void read_model(const json& j, const std::string& path, ModelConfig& c,
                std::vector<std::string>* problems) {
  read_section(j, path, c, problems);
}

void read_train(const json& j, const std::string& path, TrainConfig& c,
                std::vector<std::string>* problems) {
  read_section(j, path, c, problems);
}

void read_data(const json& j, const std::string& path, DataConfig& c,
               std::vector<std::string>* problems) {
  read_section(j, path, c, problems);
}

}  // namespace config_detail

json to_json(const ModelConfig& c) {
  return config_detail::write_section(c);
}

json to_json(const OpsConfig& c) {
  if (c.per_op.empty()) return c.all;
  json j = json::object();
  for (const auto& [op, impl] : c.per_op) j[op] = impl;
  return j;
}

json to_json(const TrainConfig& c) {
  return config_detail::write_section(c);
}

json to_json(const DataConfig& c) {
  return config_detail::write_section(c);
}

json to_json(const RunConfig& c) {
  json j = config_detail::write_section(c);
  j[section_key<ModelConfig>()] = to_json(c.model);
  j[section_key<TrainConfig>()] = to_json(c.train);
  j[section_key<DataConfig>()] = to_json(c.data);
  return j;
}

std::vector<FieldInfo> run_config_fields() {
  std::vector<FieldInfo> out;
  const RunConfig defaults;
  config_detail::FieldLister own("", out);
  fields(own, defaults);
  auto list = [&out](const auto& section) {
    using Config = std::decay_t<decltype(section)>;
    config_detail::FieldLister lister(std::string(section_key<Config>()) + ".", out);
    fields(lister, section);
  };
  list(defaults.model);
  list(defaults.train);
  list(defaults.data);
  return out;
}

RunConfig run_config_from_json(const json& j) {
  std::vector<std::string> problems;
  RunConfig c;
  config_detail::JsonReader r(j, "$", &problems);
  config_detail::read_run_fields(r, c);
  auto section = [&](const char* key) -> json {
    const json* v = r.section(key);
    return v ? *v : json::object();
  };
  config_detail::read_model(section(section_key<ModelConfig>()), "$.model", c.model, &problems);
  config_detail::read_train(section(section_key<TrainConfig>()), "$.train", c.train, &problems);
  config_detail::read_data(section(section_key<DataConfig>()), "$.data", c.data, &problems);
  r.reject_unknown_keys();
  if (!problems.empty()) throw ConfigError("the run config", problems);
  return c;
}

}  // namespace mmlab
