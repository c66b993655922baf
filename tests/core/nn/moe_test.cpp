// SPDX-License-Identifier: GPL-3.0-or-later
// Switch MoE: capacity arithmetic, dropped tokens, the load-balancing loss by hand, gradients.
#include <gtest/gtest.h>

#include "core/models/switch_moe.h"
#include "core/ops/moe_ops.h"
#include "core/ops/torch_compat.h"
#include "grad_check.h"

namespace mmlab {
namespace {

SwitchMoe make_moe(int64_t d, int64_t de, int64_t X, double cf) {
  torch::manual_seed(1);
  return SwitchMoe(SwitchMoeOptions(d, d, de, X).capacity_factor(cf).aux_loss_weight(0.01));
}

// Router weights that send token t to expert route[t] with a known probability.
void force_routes(SwitchMoe& moe, torch::Tensor& x, const std::vector<int64_t>& route) {
  torch::NoGradGuard no_grad;
  const int64_t X = moe->options.n_expert(), d = moe->options.d_in();
  moe->router->weight.zero_();
  for (int64_t i = 0; i < X && i < d; ++i) moe->router->weight[i][i] = 4.0;
  x = torch::zeros({1, static_cast<int64_t>(route.size()), d});
  for (size_t t = 0; t < route.size(); ++t) {
    x[0][static_cast<int64_t>(t)][route[t]] = 1.0;
    x[0][static_cast<int64_t>(t)][d - 1] = 0.1 * static_cast<double>(t + 1);  // distinct tokens
  }
}

TEST(SwitchMoe, CapacityIsFloorOfFactorTimesTokensOverExperts) {
  auto moe = make_moe(8, 16, 4, 1.0);
  EXPECT_EQ(moe->capacity(10), 2);  // floor(10/4)
  EXPECT_EQ(moe->capacity(3), 0);
  auto moe2 = make_moe(8, 16, 4, 1.25);
  EXPECT_EQ(moe2->capacity(10), 3);  // floor(12.5/4)
  auto moe3 = make_moe(8, 16, 3, 2.0);
  EXPECT_EQ(moe3->capacity(7), 4);  // floor(14/3)
}

TEST(SwitchMoe, TokensOverCapacityGetZeroOutputInTokenOrder) {
  auto moe = make_moe(8, 16, 4, 1.0);
  torch::Tensor x;
  // 8 tokens, capacity 2: expert 0 gets tokens 0,1,2,5 -> tokens 2 and 5 are dropped.
  force_routes(moe, x, {0, 0, 0, 1, 2, 0, 3, 1});
  auto y = moe(x);  // (1, 8, 8)
  const auto& st = moe->last_stats();
  EXPECT_EQ(st.tokens, 8);
  EXPECT_EQ(st.dropped.item<int64_t>(), 2);
  EXPECT_EQ(st.expert_tokens[0].item<int64_t>(), 4);
  EXPECT_EQ(st.expert_tokens[1].item<int64_t>(), 2);
  for (int64_t t : {2, 5}) EXPECT_EQ(y[0][t].abs().sum().item<float>(), 0.0f) << t;
  for (int64_t t : {0, 1, 3, 4, 6, 7}) EXPECT_GT(y[0][t].abs().sum().item<float>(), 0.0f) << t;
  // Without a capacity limit (generation), nothing is dropped.
  moe->route(x, false);
  EXPECT_EQ(moe->last_stats().dropped.item<int64_t>(), 0);
}

TEST(SwitchMoe, OutputIsGateTimesExpert) {
  auto moe = make_moe(6, 5, 3, 3.0);  // capacity >= tokens: nothing dropped
  torch::manual_seed(2);
  auto x = torch::randn({2, 3, 6});
  auto y = moe(x);
  torch::NoGradGuard no_grad;
  auto flat = x.view({-1, 6});
  auto probs = torch::softmax(torch::matmul(flat, moe->router->weight.t()), -1);
  for (int64_t t = 0; t < flat.size(0); ++t) {
    auto [p, i] = probs[t].max(0);
    const int64_t e = i.item<int64_t>();
    auto expected = torch::matmul(torch::relu(torch::matmul(flat[t], moe->w1[e])), moe->w2[e]) * p;
    EXPECT_LT((y.view({-1, 6})[t] - expected).abs().max().item<float>(), 1e-5) << t;
  }
}

TEST(SwitchMoe, AuxLossEqualsHandComputedValue) {
  auto moe = make_moe(4, 8, 2, 1.0);
  torch::NoGradGuard no_grad;
  moe->router->weight.copy_(torch::tensor({{1.0, 0.0, 0.0, 0.0}, {0.0, 1.0, 0.0, 0.0}}));
  // Token logits: (2,0), (0,1), (0,3) -> argmax 0, 1, 1.
  auto x = torch::tensor({{2.0, 0.0, 0.0, 0.0}, {0.0, 1.0, 0.0, 0.0}, {0.0, 3.0, 0.0, 0.0}})
               .view({1, 3, 4});
  moe(x);
  auto sm = [](double a, double b) { return std::exp(a) / (std::exp(a) + std::exp(b)); };
  const double P0 = (sm(2, 0) + sm(0, 1) + sm(0, 3)) / 3, P1 = 1 - P0;
  const double f0 = 1.0 / 3, f1 = 2.0 / 3;
  const double expected = 0.01 * 2 * (f0 * P0 + f1 * P1);
  EXPECT_NEAR(moe->last_stats().aux_loss.item<double>(), expected, 1e-7);
}

TEST(SwitchMoe, RouterReceivesGradientThroughGateAndAuxLoss) {
  auto moe = make_moe(6, 5, 3, 1.0);
  torch::manual_seed(3);
  auto x = torch::randn({2, 6, 6});
  auto y = moe(x);
  (y.pow(2).sum() + moe->last_stats().aux_loss).backward();
  ASSERT_TRUE(moe->router->weight.grad().defined());
  EXPECT_GT(moe->router->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST(SwitchMoe, FiniteDifferenceGradientsInDouble) {
  auto moe = make_moe(5, 4, 3, 1.0);
  moe->to(torch::kDouble);
  torch::manual_seed(4);
  auto x = torch::randn({2, 5, 5}, torch::kDouble).requires_grad_();
  auto w = torch::randn({2, 5, 5}, torch::kDouble);
  test::expect_gradients_match(*moe, {x},
                               [&] { return (moe(x) * w).sum() + moe->last_stats().aux_loss; });
}

// Under bf16 autocast the layer dispatches its tokens in bf16; the experts' matmuls rounded them
// to bf16 before, so the output and every gradient equal the op fed the fp32 tokens.
TEST(SwitchMoe, UnderAutocastDispatchingInBf16ChangesNoValue_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto moe = make_moe(64, 96, 4, 1.0);
  moe->to(torch::kCUDA);
  torch::manual_seed(5);
  auto x = torch::randn({3, 50, 64}, torch::kCUDA).requires_grad_();  // (B, L, D)
  auto w = torch::randn({3, 50, 64}, torch::kCUDA);
  compat::CudaAutocast autocast(true);
  auto grads = [&](const torch::Tensor& y) {
    for (auto& p : moe->parameters()) p.mutable_grad() = torch::Tensor();
    x.mutable_grad() = torch::Tensor();
    (y.to(torch::kFloat) * w).sum().backward();
    std::vector<torch::Tensor> g = {x.grad().clone()};
    for (auto& p : moe->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto y_layer = moe(x);
  EXPECT_EQ(y_layer.scalar_type(), torch::kBFloat16);
  auto g_layer = grads(y_layer);

  auto flat = x.view({-1, 64});  // (T, D) fp32
  ops::SwitchMoeArgs args;
  args.x = flat;
  {
    compat::NoAutocast fp32;  // the router as the layer runs it
    args.probs = torch::softmax(torch::matmul(flat, moe->router->weight.t()), -1);  // (T, X)
  }
  args.w1 = moe->w1;
  args.w2 = moe->w2;
  args.capacity = moe->capacity(flat.size(0));
  auto y_op = ops::switch_moe(args).y.view({3, 50, 64});
  auto g_op = grads(y_op);

  EXPECT_TRUE(torch::equal(y_layer, y_op));
  ASSERT_EQ(g_layer.size(), g_op.size());
  for (size_t i = 0; i < g_op.size(); ++i) {
    EXPECT_LE((g_layer[i] - g_op[i]).abs().max().item<float>(),
              1e-6f * g_op[i].abs().max().item<float>())
        << "gradient " << i;
  }
}

}  // namespace
}  // namespace mmlab
