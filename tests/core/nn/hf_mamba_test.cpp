// SPDX-License-Identifier: GPL-3.0-or-later
// Hugging Face Mamba export/import (bit-exact round trip, the exact config.json, refusals) and
// the safetensors model file of every family (round trip, files of another model refused).
#include "core/io/hf_mamba.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <set>

#include "core/io/model_file.h"
#include "core/io/safetensors.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// A tiny model configured as Hugging Face's Mamba: RMSNorm, final norm, 4 Mamba layers.
ModelConfig hf_style(bool tied) {
  ModelConfig c;
  c.family = "mamba";
  c.n_block = 2;  // "M M" x 2
  c.d_model = 32;
  c.d_state = 8;
  c.vocab_size = 97;
  c.norm = "rmsnorm";
  c.final_norm = true;
  c.tie_embeddings = tied;
  return c;
}

/// Adds noise to every parameter, so norms (all ones), D (all ones) and A_log (equal rows) differ
/// per element and a swapped or transposed tensor cannot go unnoticed.
void perturb(LanguageModel& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.1);
}

/// Bit-for-bit equality (torch::equal would call -0.0 == 0.0 and fail on NaN).
bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.nbytes()) == 0;
}

torch::Tensor logits_of(LanguageModel& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  model->eval();
  return model(ids).logits;
}

class HfRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(HfRoundTrip, ExportThenImportIsBitExact) {
  const bool tied = GetParam();
  torch::manual_seed(1);
  LanguageModel model(hf_style(tied));
  perturb(model, 2);
  test::TempDir dir;
  export_hf_mamba(model, dir / "export");

  // The file holds exactly transformers' names, F32, with format=pt.
  SafetensorsFile file = load_safetensors(dir / "export" / "model.safetensors");
  EXPECT_EQ(file.metadata.at("format"), "pt");
  std::set<std::string> names;
  for (const auto& [name, t] : file.tensors) {
    names.insert(name);
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
  }
  std::set<std::string> want = {"backbone.embeddings.weight", "backbone.norm_f.weight"};
  for (int i = 0; i < 4; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    for (const char* n :
         {"norm.weight", "mixer.in_proj.weight", "mixer.conv1d.weight", "mixer.conv1d.bias",
          "mixer.x_proj.weight", "mixer.dt_proj.weight", "mixer.dt_proj.bias", "mixer.A_log",
          "mixer.D", "mixer.out_proj.weight"}) {
      want.insert(p + n);
    }
  }
  if (!tied) want.insert("lm_head.weight");
  EXPECT_EQ(names, want);
  EXPECT_TRUE(bit_equal(file.at("backbone.layers.2.mixer.A_log"),
                        model->named_parameters()["layers.2.mixer.A_log"]));

  LanguageModel back = import_hf_mamba(dir / "export");
  EXPECT_EQ(to_json(back->config), to_json(model->config));
  auto ours = model->named_parameters();
  auto theirs = back->named_parameters();
  ASSERT_EQ(ours.size(), theirs.size());
  for (const auto& p : ours) {
    ASSERT_TRUE(theirs.contains(p.key())) << p.key();
    EXPECT_TRUE(bit_equal(p.value(), theirs[p.key()])) << p.key();
  }
  auto ids = torch::randint(0, 97, {2, 9}, torch::kLong);
  EXPECT_TRUE(bit_equal(logits_of(model, ids), logits_of(back, ids)));
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, HfRoundTrip, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "tied" : "untied"; });

TEST(HfMamba, ConfigJsonHasTheExactFields) {
  ModelConfig c = hf_style(false);
  c.d_model = 48;
  c.d_state = 8;
  c.n_block = 3;  // 6 Mamba layers
  c.d_conv = 3;
  c.expand = 3;
  c.vocab_size = 101;
  c.norm_eps = 1e-6;
  torch::manual_seed(3);
  LanguageModel model(c);
  test::TempDir dir;
  HfExportOptions options;
  options.eot_id = 100;
  export_hf_mamba(model, dir / "out", options);
  const json j = json::parse(read_file(dir / "out" / "config.json"));
  EXPECT_EQ(j.at("architectures"), json::array({"MambaForCausalLM"}));
  EXPECT_EQ(j.at("model_type"), "mamba");
  EXPECT_EQ(j.at("hidden_size"), 48);
  EXPECT_EQ(j.at("state_size"), 8);
  EXPECT_EQ(j.at("num_hidden_layers"), 6);
  EXPECT_EQ(j.at("conv_kernel"), 3);
  EXPECT_EQ(j.at("expand"), 3);
  EXPECT_EQ(j.at("time_step_rank"), 3);  // ceil(48 / 16), written as a number, not "auto"
  EXPECT_TRUE(j.at("time_step_rank").is_number_integer());
  EXPECT_EQ(j.at("intermediate_size"), 144);
  EXPECT_EQ(j.at("vocab_size"), 101);
  EXPECT_TRUE(j.at("use_bias").is_boolean());
  EXPECT_EQ(j.at("use_bias"), false);
  EXPECT_EQ(j.at("use_conv_bias"), true);
  EXPECT_EQ(j.at("tie_word_embeddings"), false);
  EXPECT_DOUBLE_EQ(j.at("layer_norm_epsilon").get<double>(), 1e-6);
  EXPECT_EQ(j.at("hidden_act"), "silu");
  EXPECT_EQ(j.at("residual_in_fp32"), true);
  EXPECT_EQ(j.at("eos_token_id"), 100);
  EXPECT_EQ(j.at("pad_token_id"), 100);
  EXPECT_EQ(j.at("torch_dtype"), "float32");
  EXPECT_DOUBLE_EQ(j.at("time_step_min").get<double>(), c.dt_min);
  EXPECT_DOUBLE_EQ(j.at("time_step_max").get<double>(), c.dt_max);
  // Its tensors have the shapes the config implies.
  SafetensorsFile file = load_safetensors(dir / "out" / "model.safetensors");
  EXPECT_EQ(file.at("backbone.layers.5.mixer.in_proj.weight").sizes(),
            (std::vector<int64_t>{288, 48}));
  EXPECT_EQ(file.at("backbone.layers.5.mixer.conv1d.weight").sizes(),
            (std::vector<int64_t>{144, 1, 3}));
  EXPECT_EQ(file.at("backbone.layers.5.mixer.x_proj.weight").sizes(),
            (std::vector<int64_t>{3 + 16, 144}));
  EXPECT_EQ(file.at("lm_head.weight").sizes(), (std::vector<int64_t>{101, 48}));
}

TEST(HfMamba, MoeMambaIsRefusedNamingTheSetting) {
  ModelConfig c = hf_style(true);
  c.family = "moe-mamba";
  c.n_expert = 4;
  c.d_expert = 16;
  LanguageModel model(c);
  test::TempDir dir;
  try {
    export_hf_mamba(model, dir / "out");
    FAIL() << "a MoE-Mamba model was exported";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("moe-mamba"), std::string::npos) << what;
    EXPECT_NE(what.find("(E)"), std::string::npos) << what;
    EXPECT_NE(what.find("--format safetensors"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "out" / "config.json"));
}

TEST(HfMamba, LayerNormAndNoFinalNormAreRefusedNamingBothSettings) {
  ModelConfig c = hf_style(false);
  c.norm = "layernorm";
  c.final_norm = false;
  try {
    check_hf_mamba_exportable(c);
    FAIL() << "the paper's LayerNorm Mamba was accepted";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("model.norm"), std::string::npos) << what;
    EXPECT_NE(what.find("\"rmsnorm\""), std::string::npos) << what;
    EXPECT_NE(what.find("model.final_norm"), std::string::npos) << what;
  }
}

/// Rewrites `dir`'s files as transformers' save_pretrained could have: no mmlab metadata,
/// time_step_rank "auto", the tied head written out.
void rewrite_as_transformers(const fs::path& dir, const std::function<void(json&)>& edit_config) {
  SafetensorsFile file = load_safetensors(dir / "model.safetensors");
  auto tensors = file.tensors;
  if (!file.contains("lm_head.weight")) {
    tensors.emplace_back("lm_head.weight", file.at("backbone.embeddings.weight").clone());
  }
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  json j = json::parse(read_file(dir / "config.json"));
  j["time_step_rank"] = "auto";
  j.erase("intermediate_size");
  edit_config(j);
  write_file_atomically(dir / "config.json", j.dump(2));
}

TEST(HfMamba, ImportsADirectoryWithoutOurMetadata) {
  torch::manual_seed(4);
  LanguageModel model(hf_style(true));
  perturb(model, 5);
  test::TempDir dir;
  export_hf_mamba(model, dir.path());
  rewrite_as_transformers(dir.path(), [](json&) {});
  LanguageModel back = import_hf_mamba(dir.path());
  EXPECT_EQ(back->config.family, "mamba");
  EXPECT_EQ(back->layers->size(), 4u);
  auto ids = torch::randint(0, 97, {1, 7}, torch::kLong);
  EXPECT_TRUE(bit_equal(logits_of(model, ids), logits_of(back, ids)));
}

TEST(HfMamba, ImportRefusesWhatMmlabCannotRepresent) {
  torch::manual_seed(6);
  LanguageModel model(hf_style(true));
  test::TempDir dir;
  export_hf_mamba(model, dir.path());
  rewrite_as_transformers(dir.path(), [](json& j) { j["use_bias"] = true; });
  EXPECT_THROW(import_hf_mamba(dir.path()), UserError);

  rewrite_as_transformers(dir.path(), [](json& j) {
    j["use_bias"] = false;
    j["hidden_size"] = 64;  // the tensors are 32 wide
  });
  try {
    import_hf_mamba(dir.path());
    FAIL() << "tensors of another width were loaded";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(import_hf_mamba(dir / "missing"), UserError);

  // A tied model whose written head is not the embedding is ambiguous.
  export_hf_mamba(model, dir.path());
  SafetensorsFile file = load_safetensors(dir / "model.safetensors");
  auto tensors = file.tensors;
  tensors.emplace_back("lm_head.weight", file.at("backbone.embeddings.weight") + 1.0f);
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  EXPECT_THROW(import_hf_mamba(dir.path()), UserError);
}

TEST(HfMamba, ReferenceLogitsFileHoldsIdsAndTheModelsLogits) {
  torch::manual_seed(7);
  LanguageModel model(hf_style(true));
  test::TempDir dir;
  auto ids = torch::randint(0, 97, {2, 5}, torch::kLong);
  write_reference_logits(model, ids, dir / "ref.safetensors");
  SafetensorsFile ref = load_safetensors(dir / "ref.safetensors");
  EXPECT_TRUE(bit_equal(ref.at("input_ids"), ids));
  EXPECT_TRUE(bit_equal(ref.at("logits"), logits_of(model, ids)));
}

// --- the safetensors model file of every family ----------------------------------------------

ModelConfig tiny(const std::string& family, const std::string& pattern = "") {
  ModelConfig c;
  c.family = family;
  c.pattern = pattern;
  c.n_block = 2;
  c.d_model = 32;
  c.head_dim = 8;
  c.vocab_size = 50;
  c.n_expert = 4;
  c.d_expert = 24;
  c.d_ff = 48;
  c.d_state = 4;
  return c;
}

class EveryFamilyFile : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(EveryFamilyFile, SaveThenLoadGivesEqualLogits) {
  ModelConfig c = tiny(GetParam().first, GetParam().second);
  torch::manual_seed(8);
  LanguageModel model(c);
  perturb(model, 9);
  test::TempDir dir;
  save_model_safetensors(model, dir / "m.safetensors");
  SafetensorsFile file = load_safetensors(dir / "m.safetensors");
  EXPECT_EQ(json::parse(file.metadata.at(kMmlabConfigKey)), to_json(c));
  LanguageModel back = load_model_safetensors(dir / "m.safetensors");
  EXPECT_EQ(to_json(back->config), to_json(c));
  for (const auto& p : model->named_parameters()) {
    EXPECT_TRUE(bit_equal(p.value(), back->named_parameters()[p.key()])) << p.key();
  }
  auto ids = torch::randint(0, c.vocab_size, {2, 8}, torch::kLong);
  EXPECT_TRUE(bit_equal(logits_of(model, ids), logits_of(back, ids)));
}

INSTANTIATE_TEST_SUITE_P(
    Families, EveryFamilyFile,
    ::testing::Values(std::make_pair("moe-mamba", ""), std::make_pair("mamba", ""),
                      std::make_pair("transformer-moe", ""), std::make_pair("transformer", ""),
                      std::make_pair("parallel-moe-mamba", ""),
                      std::make_pair("inner-moe-mamba", "M[conv=E,gate=E,out=E] M")),
    [](const auto& info) {
      std::string n = info.param.first;
      for (char& ch : n) ch = ch == '-' ? '_' : ch;
      return n;
    });

TEST(ModelFile, AFileOfAnotherModelIsRefused) {
  torch::manual_seed(10);
  LanguageModel moe_mamba(tiny("moe-mamba"));
  test::TempDir dir;
  save_model_safetensors(moe_mamba, dir / "m.safetensors");

  // Into a model of another config.
  LanguageModel transformer(tiny("transformer"));
  try {
    load_model_safetensors_into(transformer, dir / "m.safetensors");
    FAIL() << "a moe-mamba file loaded into a transformer";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("another config"), std::string::npos) << what;
    EXPECT_NE(what.find("moe-mamba"), std::string::npos) << what;
  }
  // The same config loads.
  LanguageModel same(tiny("moe-mamba"));
  load_model_safetensors_into(same, dir / "m.safetensors");

  // A file whose embedded config does not describe its tensors.
  SafetensorsFile file = load_safetensors(dir / "m.safetensors");
  ModelConfig wider = tiny("moe-mamba");
  wider.d_model = 64;
  save_safetensors(dir / "lying.safetensors", file.tensors,
                   {{kMmlabConfigKey, to_json(wider).dump()}});
  EXPECT_THROW(load_model_safetensors(dir / "lying.safetensors"), UserError);

  // A file of another model kind's tensors (transformer) under a moe-mamba config.
  save_model_safetensors(transformer, dir / "t.safetensors");
  SafetensorsFile t = load_safetensors(dir / "t.safetensors");
  save_safetensors(dir / "mixed.safetensors", t.tensors,
                   {{kMmlabConfigKey, to_json(tiny("moe-mamba")).dump()}});
  EXPECT_THROW(load_model_safetensors(dir / "mixed.safetensors"), UserError);

  // No mmlab config at all (e.g. a Hugging Face file).
  save_safetensors(dir / "plain.safetensors", file.tensors, {{"format", "pt"}});
  try {
    load_model_safetensors(dir / "plain.safetensors");
    FAIL() << "a file without a config loaded";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no mmlab model config"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mmlab
