// SPDX-License-Identifier: GPL-3.0-or-later
// Every family: output shapes, causality, cached decoding == full forward; the Mamba layer's
// gradients by finite differences and its initialisation; the truncated-normal init statistics.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/config/layer_pattern.h"
#include "core/models/init.h"
#include "core/models/language_model.h"
#include "core/models/mamba_layer.h"
#include "core/util/error.h"
#include "grad_check.h"

namespace mmlab {
namespace {

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
  c.capacity_factor = 4.0;  // no drops, so decode (no capacity) and forward agree
  return c;
}

class EveryFamily : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(EveryFamily, ShapesAndCausality) {
  ModelConfig c = tiny(GetParam().first, GetParam().second);
  torch::manual_seed(0);
  LanguageModel model(c);
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, c.vocab_size, {2, 12}, torch::kLong);
  auto out = model(ids);
  ASSERT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 12, c.vocab_size}));
  EXPECT_EQ(out.aux_loss.dim(), 0);
  // Changing tokens after position t leaves the logits at positions <= t unchanged.
  const int64_t t = 6;
  auto changed = ids.clone();
  changed.narrow(1, t + 1, 12 - t - 1).random_(0, c.vocab_size);
  auto out2 = model(changed);
  EXPECT_LT(
      (out.logits.narrow(1, 0, t + 1) - out2.logits.narrow(1, 0, t + 1)).abs().max().item<float>(),
      1e-5);
  EXPECT_GT((out.logits.narrow(1, t + 1, 12 - t - 1) - out2.logits.narrow(1, t + 1, 12 - t - 1))
                .abs()
                .max()
                .item<float>(),
            1e-4);
}

TEST_P(EveryFamily, CachedDecodeEqualsFullForward) {
  ModelConfig c = tiny(GetParam().first, GetParam().second);
  torch::manual_seed(0);
  LanguageModel model(c);
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, c.vocab_size, {2, 10}, torch::kLong);
  auto full = model(ids).logits;  // (2, 10, V)
  std::vector<LayerCache> caches;
  auto prefix = model->decode(ids.narrow(1, 0, 4), caches);  // prompt of 4 tokens at once
  std::vector<torch::Tensor> parts = {prefix};
  for (int64_t t = 4; t < 10; ++t) parts.push_back(model->decode(ids.narrow(1, t, 1), caches));
  auto stepped = torch::cat(parts, 1);
  EXPECT_LT((stepped - full).abs().max().item<float>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Families, EveryFamily,
    ::testing::Values(std::make_pair("transformer", ""), std::make_pair("transformer-moe", ""),
                      std::make_pair("mamba", ""), std::make_pair("moe-mamba", ""),
                      std::make_pair("parallel-moe-mamba", ""),
                      std::make_pair("inner-moe-mamba", "M[conv=E,gate=E,out=E] M")),
    [](const auto& info) {
      std::string n = info.param.first;
      for (char& ch : n) ch = ch == '-' ? '_' : ch;
      return n;
    });

TEST(MambaLayer, FiniteDifferenceGradientsInDouble) {
  torch::manual_seed(1);
  MambaLayer layer(MambaLayerOptions(8).d_state(3).expand(2));
  layer->to(torch::kDouble);
  auto x = torch::randn({2, 5, 8}, torch::kDouble).requires_grad_();
  auto w = torch::randn({2, 5, 8}, torch::kDouble);
  test::expect_gradients_match(*layer, {x}, [&] { return (layer(x) * w).sum(); });
}

TEST(MambaLayer, InitialisationFollowsMambaSimple) {
  torch::manual_seed(2);
  MambaLayer layer(MambaLayerOptions(64));  // Di 128, N 16, R 4
  ASSERT_EQ(layer->A_log.sizes(), (std::vector<int64_t>{128, 16}));
  EXPECT_NEAR(layer->A_log[5][0].item<float>(), 0.0, 1e-6);              // log 1
  EXPECT_NEAR(layer->A_log[7][15].item<float>(), std::log(16.0), 1e-6);  // log 16
  EXPECT_EQ(layer->D.sum().item<float>(), 128.0f);
  // softplus(dt_proj.bias) lies in [dt_min, dt_max].
  auto dt = torch::softplus(layer->dt_proj->bias);
  EXPECT_GE(dt.min().item<float>(), 0.001f * 0.999f);
  EXPECT_LE(dt.max().item<float>(), 0.1f * 1.001f);
  EXPECT_LE(layer->dt_proj->weight.abs().max().item<float>(), 0.5f + 1e-6f);  // R^-1/2
  EXPECT_EQ(layer->x_proj->weight.size(0), 4 + 2 * 16);
  EXPECT_EQ(layer->conv1d->weight.sizes(), (std::vector<int64_t>{128, 1, 4}));
}

TEST(Init, TruncatedNormalHasTheTruncatedStatistics) {
  torch::manual_seed(3);
  // Embedding (fan_in 1): sigma = sqrt(0.1) = 0.316, heavily truncated at 0.2.
  auto w = torch::empty({400000});
  init_truncated_normal_(w, 1.0);
  EXPECT_LE(w.abs().max().item<float>(), 0.2f);
  EXPECT_NEAR(w.mean().item<float>(), 0.0, 2e-3);
  EXPECT_NEAR(w.std().item<float>(), truncated_normal_std(std::sqrt(0.1), 0.2), 2e-3);
  // fan_in 512: sigma = 0.01398; truncation at 0.2 is ~14 sigma, so plain normal statistics.
  auto v = torch::empty({400000});
  init_truncated_normal_(v, 512.0);
  EXPECT_NEAR(v.std().item<float>(), std::sqrt(0.1 / 512), 1e-4);
}

TEST(Init, ModelUsesPaperInitForEmbeddingHeadAndExperts) {
  ModelConfig c = tiny("moe-mamba");
  c.d_model = 64;
  c.vocab_size = 3000;
  torch::manual_seed(4);
  LanguageModel model(c);
  EXPECT_NEAR(model->embedding->weight.std().item<float>(),
              truncated_normal_std(std::sqrt(0.1), 0.2), 5e-3);
  EXPECT_NEAR(model->lm_head->weight.std().item<float>(), std::sqrt(0.1 / 64), 1e-3);
  auto moe = model->moe_layers().at(0);
  EXPECT_NEAR(moe->w2.std().item<float>(), std::sqrt(0.1 / (4 * 24)), 3e-3);
}

TEST(LanguageModel, ALayerKindWithoutImplementationIsABugNotBadInput) {
  // parse_pattern never yields such a kind; if a new one lacks its case in make_mixer, that is an
  // internal error (exit 1), not a UserError telling the user to fix the input (exit 3).
  LayerSpec spec;
  spec.kind = static_cast<LayerKind>(99);
  spec.token = "Z";
  ModelConfig c;
  c.vocab_size = 16;
  try {
    make_mixer(spec, c);
    FAIL() << "no exception";
  } catch (const UserError& e) {
    FAIL() << "reported as the user's error: " << e.what();
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()), "make_mixer: layer token 'Z' has no implementation");
  }
}

TEST(LayerPattern, UnknownTokenListsValidOnes) {
  try {
    parse_pattern("M X");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'X'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(M|E)"), std::string::npos);
  }
}

}  // namespace
}  // namespace mmlab
