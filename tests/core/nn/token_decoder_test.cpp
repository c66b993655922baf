// SPDX-License-Identifier: GPL-3.0-or-later
// TokenDecoder: on a GPU the recorded step (a CUDA graph) decodes exactly what op-by-op decoding
// does, for Mamba and MoE-Mamba, and advances the caches the same; elsewhere it says why not and
// decodes op by op.
#include "core/models/token_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mmlab {
namespace {

ModelConfig tiny(const std::string& family) {
  ModelConfig c;
  c.family = family;
  c.n_block = 2;
  c.d_model = 64;  // one attention head of 64 for the transformer
  c.d_state = 8;
  c.n_expert = 4;
  c.vocab_size = 61;
  return c;
}

struct Decoded {
  std::vector<torch::Tensor> logits;  // per step, (1, 1, V) on the CPU
  std::vector<LayerCache> caches;
};

/// Greedy decoding of `steps` tokens after a 5-token prompt, through TokenDecoder or op by op.
Decoded decode(LanguageModel& model, torch::Device device, int steps, bool through_decoder,
               std::string* why_not = nullptr, bool* graphed = nullptr) {
  torch::NoGradGuard no_grad;
  Decoded d;
  auto prompt = torch::tensor({{3, 14, 15, 9, 2}}, torch::kLong).to(device);
  auto tok = model->decode(prompt, d.caches).select(1, -1).argmax(-1, true);  // (1, 1)
  TokenDecoder decoder(model, d.caches);
  for (int i = 0; i < steps; ++i) {
    auto logits = through_decoder ? decoder.step(tok) : model->decode(tok, d.caches);
    d.logits.push_back(logits.to(torch::kCPU, torch::kFloat, false, true));
    tok = logits.select(1, -1).argmax(-1, true);
  }
  if (why_not != nullptr) *why_not = decoder.why_not_graphed();
  if (graphed != nullptr) *graphed = decoder.graphed();
  return d;
}

void expect_same_decoding(const std::string& family, torch::Device device, bool expect_graph) {
  torch::manual_seed(7);
  LanguageModel model(tiny(family));
  model->to(device);
  model->eval();
  std::string why_not;
  bool graphed = false;
  const Decoded ref = decode(model, device, 12, /*through_decoder=*/false);
  const Decoded got = decode(model, device, 12, /*through_decoder=*/true, &why_not, &graphed);
  EXPECT_EQ(graphed, expect_graph) << why_not;
  ASSERT_EQ(got.logits.size(), ref.logits.size());
  for (size_t i = 0; i < ref.logits.size(); ++i) {
    EXPECT_TRUE(torch::allclose(got.logits[i], ref.logits[i], 1e-5, 1e-5)) << "step " << i;
  }
  ASSERT_EQ(got.caches.size(), ref.caches.size());
  for (size_t i = 0; i < ref.caches.size(); ++i) {
    EXPECT_EQ(got.caches[i].position, ref.caches[i].position) << "layer " << i;
    if (ref.caches[i].ssm_state.defined()) {
      EXPECT_TRUE(
          torch::allclose(got.caches[i].ssm_state.cpu(), ref.caches[i].ssm_state.cpu(), 1e-5, 1e-5))
          << "layer " << i;
    }
  }
}

TEST(TokenDecoder, OnTheCpuDecodesOpByOpAndSaysWhy) {
  expect_same_decoding("mamba", torch::kCPU, /*expect_graph=*/false);
  torch::manual_seed(7);
  LanguageModel model(tiny("mamba"));
  std::string why_not;
  decode(model, torch::kCPU, 1, true, &why_not);
  EXPECT_FALSE(why_not.empty());
}

TEST(TokenDecoder, TheGraphOfAMambaStepDecodesWhatOpByOpDoes_CUDA) {
  expect_same_decoding("mamba", torch::kCUDA, /*expect_graph=*/true);
}

TEST(TokenDecoder, TheGraphOfAMoeMambaStepDecodesWhatOpByOpDoes_CUDA) {
  expect_same_decoding("moe-mamba", torch::kCUDA, /*expect_graph=*/true);
}

TEST(TokenDecoder, ATransformerIsNotGraphedAndStillDecodesTheSame_CUDA) {
  expect_same_decoding("transformer", torch::kCUDA, /*expect_graph=*/false);
}

}  // namespace
}  // namespace mmlab
