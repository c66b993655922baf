// SPDX-License-Identifier: GPL-3.0-or-later
// Parameter counts: the paper's presets exactly (analytic), and analytic == tensor count for every
// family and variant on small configs (so the analytic formula describes the real model).
#include <gtest/gtest.h>

#include "core/config/experiment.h"
#include "core/config/param_count.h"
#include "core/models/language_model.h"
#include "core/models/switch_moe.h"

namespace mmlab {
namespace {

const RunConfig& find_run(const Experiment& ex, const std::string& name) {
  for (const auto& r : ex.runs) {
    if (r.name == name) return r;
  }
  throw std::runtime_error("no run " + name);
}

Experiment paper(const std::string& file) {
  return load_experiment(std::string(MMLAB_SOURCE_DIR) + "/experiments/paper/" + file);
}

TEST(ParamCount, Paper25M) {
  Experiment ex = paper("25m.json");
  EXPECT_EQ(count_params(find_run(ex, "transformer-25m").model, 50257).nonembed, 25202688);
  EXPECT_EQ(count_params(find_run(ex, "mamba-25m").model, 50257).nonembed, 27131904);
  ParamCounts tmoe = count_params(find_run(ex, "transformer-moe-25m").model, 50257);
  EXPECT_EQ(tmoe.nonembed, 545406976);
  EXPECT_EQ(tmoe.nonembed_active, 25313280);
  ParamCounts mm = count_params(find_run(ex, "moe-mamba-25m").model, 50257);
  EXPECT_EQ(mm.nonembed, 542228480);
  EXPECT_EQ(mm.nonembed_active, 26329088);
  // Embedding + untied head on top: 2 * V * d.
  EXPECT_EQ(mm.total - mm.nonembed, 2 * 50257 * 512);
  EXPECT_EQ(mm.active - mm.nonembed_active, 2 * 50257 * 512);
}

TEST(ParamCount, Paper100M) {
  Experiment ex = paper("100m.json");
  EXPECT_EQ(count_params(find_run(ex, "mamba-100m").model, 50257).nonembed, 120717312);
  ParamCounts tmoe = count_params(find_run(ex, "transformer-moe-100m").model, 50257);
  EXPECT_EQ(tmoe.nonembed, 2454110208);
  EXPECT_EQ(tmoe.nonembed_active, 113688576);
  ParamCounts mm = count_params(find_run(ex, "moe-mamba-100m").model, 50257);
  EXPECT_EQ(mm.nonembed, 2439069696);
  EXPECT_EQ(mm.nonembed_active, 117522432);
}

TEST(ParamCount, PaperExpertsAblation) {
  Experiment ex = paper("experts-ablation.json");
  const std::vector<std::pair<int, int64_t>> expected = {
      {32, 416358400}, {16, 214966272}, {8, 114270208}, {4, 63922176}, {1, 26161152}};
  for (const auto& [experts, total] : expected) {
    const RunConfig run = find_run(ex, "moe-mamba-" + std::to_string(experts) + "-experts");
    EXPECT_EQ(count_params(run.model, 50257).nonembed, total) << experts << " experts";
  }
}

struct Variant {
  const char* name;
  const char* family;
  const char* pattern;
  const char* norm;
  bool final_norm;
  bool tie;
};

class ParamCountMatchesTensors : public ::testing::TestWithParam<Variant> {};

TEST_P(ParamCountMatchesTensors, AnalyticEqualsModel) {
  const Variant& v = GetParam();
  ModelConfig c;
  c.family = v.family;
  c.pattern = v.pattern;
  c.n_block = 2;
  c.d_model = 64;
  c.head_dim = 16;
  c.vocab_size = 97;
  c.n_expert = 3;
  c.d_expert = 40;
  c.d_ff = 80;
  c.norm = v.norm;
  c.final_norm = v.final_norm;
  c.tie_embeddings = v.tie;
  torch::manual_seed(0);
  LanguageModel model(c);
  ParamCounts counts = count_params(c);
  EXPECT_EQ(counts.total, count_tensor_params(*model));
  // Active = total minus all but one expert of every MoE.
  int64_t inactive = 0;
  for (SwitchMoeImpl* moe : model->moe_layers()) {
    const int64_t X = moe->options.n_expert();
    inactive += (moe->w1.numel() + moe->w2.numel()) / X * (X - 1);
  }
  EXPECT_EQ(counts.active, counts.total - inactive);
  const int64_t embed =
      model->embedding->weight.numel() + (v.tie ? 0 : model->lm_head->weight.numel());
  EXPECT_EQ(counts.nonembed, counts.total - embed);
}

INSTANTIATE_TEST_SUITE_P(
    AllFamilies, ParamCountMatchesTensors,
    ::testing::Values(Variant{"transformer", "transformer", "", "layernorm", false, false},
                      Variant{"transformer_moe", "transformer-moe", "", "layernorm", false, false},
                      Variant{"mamba", "mamba", "", "layernorm", false, false},
                      Variant{"moe_mamba", "moe-mamba", "", "layernorm", false, false},
                      Variant{"parallel", "parallel-moe-mamba", "", "layernorm", false, false},
                      Variant{"inner_conv", "inner-moe-mamba", "M[conv=E]", "layernorm", false,
                              false},
                      Variant{"inner_gate_out_every_other", "inner-moe-mamba", "M[gate=E,out=E] M",
                              "layernorm", false, false},
                      Variant{"inner_all", "inner-moe-mamba", "M[conv=E,gate=E,out=E]", "layernorm",
                              false, false},
                      Variant{"hf_mamba", "mamba", "", "rmsnorm", true, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mmlab
