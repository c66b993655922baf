// SPDX-License-Identifier: GPL-3.0-or-later
// The lm_head_loss op's reference against the definition, and the model's loss path through it
// against the cross-entropy of the model's own logits (what training computed before the op).
#include <gtest/gtest.h>

#include "core/models/language_model.h"
#include "core/ops/lm_head_ops.h"

namespace mmlab::ops {
namespace {

TEST(LmHeadLoss, ReferenceIsTheMeanNegativeLogLikelihoodOfTheTargets) {
  torch::manual_seed(3);
  LmHeadLossArgs a;
  a.h = torch::randn({9, 6});
  a.weight = torch::randn({11, 6});
  a.targets = torch::randint(0, 11, {9}, torch::kLong);
  a.compute_dtype = torch::kFloat;
  const double got = lm_head_loss_reference(a).item<double>();
  auto logits = torch::mm(a.h.to(torch::kDouble), a.weight.to(torch::kDouble).t());  // (9, 11)
  auto logp = torch::log_softmax(logits, -1);
  const double want = -logp.gather(1, a.targets.unsqueeze(1)).mean().item<double>();
  EXPECT_NEAR(got, want, 1e-6);
}

TEST(LmHeadLoss, ReferenceRoundsTheMatmulInputsToTheComputeDtype) {
  torch::manual_seed(4);
  LmHeadLossArgs a;
  a.h = torch::randn({16, 32});
  a.weight = torch::randn({50, 32});
  a.targets = torch::randint(0, 50, {16}, torch::kLong);
  a.compute_dtype = torch::kFloat;
  const double fp32 = lm_head_loss_reference(a).item<double>();
  a.compute_dtype = torch::kBFloat16;
  const double bf16 = lm_head_loss_reference(a).item<double>();
  auto logits = torch::mm(a.h.to(torch::kBFloat16), a.weight.to(torch::kBFloat16).t());
  const double want =
      torch::nn::functional::cross_entropy(logits.to(torch::kFloat), a.targets).item<double>();
  EXPECT_DOUBLE_EQ(bf16, want);
  EXPECT_NE(bf16, fp32);
}

TEST(LmHeadLoss, ModelLossEqualsCrossEntropyOfItsLogitsWithTheSameGradients) {
  for (bool tied : {false, true}) {
    ModelConfig c;
    c.family = "mamba";
    c.n_block = 1;
    c.d_model = 16;
    c.vocab_size = 37;
    c.tie_embeddings = tied;
    torch::manual_seed(5);
    LanguageModel model(c);
    auto ids = torch::randint(0, 37, {2, 9}, torch::kLong);
    auto inputs = ids.narrow(1, 0, 8), targets = ids.narrow(1, 1, 8);

    auto logits = model->forward(inputs).logits;  // (2, 8, 37)
    auto want =
        torch::nn::functional::cross_entropy(logits.reshape({-1, 37}), targets.reshape({-1}));
    want.backward();
    std::vector<torch::Tensor> want_grads;
    for (const auto& p : model->parameters()) want_grads.push_back(p.grad().clone());
    model->zero_grad();

    auto got = model->next_token_loss(model->forward_hidden(inputs), targets);
    got.backward();
    EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-6) << "tied " << tied;
    const auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(params[i].grad(), want_grads[i], 1e-5, 1e-6))
          << "tied " << tied << " parameter " << i;
    }
  }
}

}  // namespace
}  // namespace mmlab::ops
