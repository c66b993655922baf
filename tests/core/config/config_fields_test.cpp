// SPDX-License-Identifier: GPL-3.0-or-later
// The field declaration (core/config/config_fields.h) is the one list the reader, the rules, the
// writer and the studio use: these tests walk the declaration itself, so a field added to it is
// covered without a new test, and a field written but not declared (or declared twice) fails.
#include <gtest/gtest.h>

#include <set>

#include "core/config/config_fields.h"
#include "core/config/experiment.h"

using namespace mmlab;
using nlohmann::json;

namespace {

std::vector<std::string> problems_of(const json& experiment) {
  try {
    parse_experiment(experiment, "f.json");
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

// A run whose `section.key` is `value`, everything else default.
json one_run_with(const std::string& dotted, const json& value) {
  const std::string section = dotted.substr(0, dotted.find('.'));
  const std::string key = dotted.substr(dotted.find('.') + 1);
  return {{"name", "e"}, {"runs", {{{"name", "r"}, {section, {{key, value}}}}}}};
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

TEST(ConfigFields, EveryWrittenKeyIsDeclaredExactlyOnce) {
  std::set<std::string> declared;
  for (const FieldInfo& f : run_config_fields()) {
    EXPECT_TRUE(declared.insert(f.key).second) << f.key << " is declared twice";
    EXPECT_FALSE(f.doc.empty()) << f.key << " has no meaning written";
  }
  std::set<std::string> written;
  const json j = to_json(RunConfig());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_object()) {
      written.insert(it.key());
      continue;
    }
    for (auto f = it.value().begin(); f != it.value().end(); ++f)
      written.insert(it.key() + "." + f.key());
  }
  EXPECT_EQ(written, declared);
  EXPECT_EQ(declared.size(), 2u + 23u + 24u + 10u);  // the run's own, model, train, data
}

TEST(ConfigFields, AMemberFindsItsKeyRuleMeaningAndDefault) {
  EXPECT_EQ(key_of(&TrainConfig::batch_size), "batch_size");
  EXPECT_EQ(key_of(&ModelConfig::capacity_factor), "capacity_factor");
  const FieldInfo vf = field_info(&DataConfig::val_fraction);
  EXPECT_EQ(vf.key, "val_fraction");
  EXPECT_EQ(vf.rule.lower_bound(), 0.0);
  EXPECT_EQ(vf.rule.upper_bound(), 0.5);
  EXPECT_EQ(field_info(&ModelConfig::d_model).rule.describe(), "> 0");
  EXPECT_EQ(field_info(&ModelConfig::norm).rule.words(),
            (std::vector<std::string>{"layernorm", "rmsnorm"}));
  EXPECT_EQ(default_of(&TrainConfig::lr), 1e-3);
  EXPECT_EQ(default_of(&DataConfig::tokenizer), "gpt2");
}

// Every bound and every word list in the declaration is what the loader checks, at the path of
// the key, with the rule's own words.
TEST(ConfigFields, EveryDeclaredRuleIsCheckedAtLoadWithItsPath) {
  int checked = 0;
  for (const FieldInfo& f : run_config_fields()) {
    if (f.key.find('.') == std::string::npos) continue;  // name, seed: no rule of their own
    std::vector<json> bad;
    if (auto lo = f.rule.lower_bound()) bad.push_back(f.rule.lower_open() ? *lo : *lo - 1);
    if (auto hi = f.rule.upper_bound()) bad.push_back(*hi + 1);
    if (!f.rule.words().empty()) bad.push_back("no-such-word");
    if (f.rule.describe() == "not empty") bad.push_back("");
    for (const json& value : bad) {
      const std::vector<std::string> p = problems_of(one_run_with(f.key, value));
      const std::string expected = "$.runs[0]." + f.key + ": must ";
      bool found = false;
      for (const auto& x : p) found |= x.rfind(expected, 0) == 0;
      EXPECT_TRUE(found) << f.key << " = " << value.dump() << " gave:\n" << joined(p);
      ++checked;
    }
  }
  EXPECT_GE(checked, 35);  // a declaration whose rules went missing would check far fewer
  // The rule's words: bound, note and the value as written.
  EXPECT_EQ(problems_of(one_run_with("model.vocab_size", -1)),
            std::vector<std::string>{
                "$.runs[0].model.vocab_size: must be >= 0 (0 = from the tokenizer), got -1."});
  EXPECT_EQ(problems_of(one_run_with("train.beta2", 1)),
            std::vector<std::string>{"$.runs[0].train.beta2: must be in [0, 1), got 1."});
  EXPECT_EQ(problems_of(one_run_with("train.ema_alpha", 0)),
            std::vector<std::string>{"$.runs[0].train.ema_alpha: must be in (0, 1], got 0."});
  EXPECT_EQ(problems_of(one_run_with("train.lr", 0.0)),
            std::vector<std::string>{"$.runs[0].train.lr: must be > 0, got 0."});
}

TEST(ConfigFields, AnUnknownKeyListsEveryDeclaredKeyOfItsSection) {
  const std::vector<std::string> p = problems_of(one_run_with("model.famly", "mamba"));
  ASSERT_EQ(p.size(), 1u) << joined(p);
  EXPECT_EQ(p[0].rfind("$.runs[0].model.famly: unknown key. Valid keys here: ", 0), 0u) << p[0];
  for (const FieldInfo& f : run_config_fields()) {
    if (f.key.rfind("model.", 0) != 0) continue;
    EXPECT_NE(p[0].find(f.key.substr(6)), std::string::npos) << f.key;
  }
}

TEST(ConfigFields, WritingAndReadingBackKeepsEveryField) {
  RunConfig c;
  c.name = "x";
  c.model.family = "transformer-moe";
  c.model.d_model = 96;
  c.model.head_dim = 32;
  c.model.tie_embeddings = true;
  c.train.tokens = 1 << 20;
  c.train.steps = 0;
  c.train.ema_alpha = 0.25;
  c.train.ops.per_op["selective_scan"] = "reference";
  c.data.split = "blank_lines";
  c.data.cache = false;
  const json j = to_json(c);
  EXPECT_EQ(j["model"]["d_ff"], 4 * 96);  // stored resolved: what the run used
  EXPECT_EQ(j["model"]["pattern"], c.model.resolved_pattern());
  const RunConfig back = run_config_from_json(j);
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(back.train.ema_alpha, 0.25);
  EXPECT_TRUE(back.model.tie_embeddings);
  EXPECT_FALSE(back.data.cache);
}
