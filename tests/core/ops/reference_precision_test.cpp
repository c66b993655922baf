// SPDX-License-Identifier: GPL-3.0-or-later
// The reference twins define what an op computes for bf16 inputs: the arithmetic in fp32 and the
// output rounded to bf16 once. A kernel is held to them, so a reference that rounds its own
// intermediates would make the correct kernel look wrong and the learning checks compare two
// different functions.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops/attention_ops.h"
#include "core/ops/mamba_ops.h"

namespace mmlab::ops {
namespace {

// The largest |got - exact| in units of half a bf16 ulp of the exact value (bf16 keeps 8
// significant bits): at most 1 when `got` is `exact` rounded once. The fp32 arithmetic before
// that rounding errs by ~1e-7 on these O(1) sums, which can put a value near zero or next to a
// rounding boundary on the other side of it: 1e-6 of absolute slack covers that and nothing
// more (a bf16 rounding of an O(1) intermediate errs by ~2e-3).
double worst_rounding(const torch::Tensor& got, const torch::Tensor& exact) {
  auto e = exact.to(torch::kDouble).flatten();
  auto g = got.to(torch::kDouble).flatten();
  auto half_ulp = torch::pow(2.0, torch::floor(torch::log2(e.abs().clamp_min(1e-30))) - 8.0);
  return (((g - e).abs() - 1e-6).clamp_min(0.0) / half_ulp).max().item<double>();
}

CausalConv1dArgs conv_case(torch::ScalarType activation, torch::ScalarType weights) {
  torch::manual_seed(4242);
  CausalConv1dArgs a;
  // Values rounded to bf16 first, so every dtype below sees the same inputs.
  a.x = torch::randn({4, 64, 200}).to(torch::kBFloat16).to(activation);  // (B, Di, L)
  a.weight = (torch::randn({64, 4}) * 0.5).to(torch::kBFloat16).to(weights);
  a.bias = (torch::randn({64}) * 0.5).to(torch::kBFloat16).to(weights);
  a.silu = true;
  return a;
}

TEST(ReferencePrecision, CausalConv1dOnBf16InputsIsTheExactResultRoundedOnce) {
  torch::NoGradGuard no_grad;
  auto exact = causal_conv1d_reference(conv_case(torch::kDouble, torch::kDouble));
  auto got = causal_conv1d_reference(conv_case(torch::kBFloat16, torch::kFloat));
  ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LE(worst_rounding(got, exact), 1.0);
}

// The rotation of q and k: x1 cos - x2 sin and x2 cos + x1 sin, each an O(1) sum of two products
// that a per-op bf16 rounding would err on by a bf16 ulp of the products.
TEST(ReferencePrecision, AttentionHeadsOnBf16InputsIsTheExactResultRoundedOnce) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(4343);
  const auto qkv =
      (torch::randn({2, 40, 3, 4, 32}) * 2.0).to(torch::kBFloat16);  // (B, L, 3, H, hd)
  AttentionHeadsArgs a;
  a.qkv = qkv.to(torch::kDouble);
  const AttentionHeads exact = attention_heads_reference(a);
  a.qkv = qkv;
  const AttentionHeads got = attention_heads_reference(a);
  ASSERT_EQ(got.q.scalar_type(), torch::kBFloat16);
  EXPECT_LE(worst_rounding(got.q, exact.q), 1.0);
  EXPECT_LE(worst_rounding(got.k, exact.k), 1.0);
  EXPECT_TRUE(torch::equal(got.v.to(torch::kDouble), exact.v));
}

}  // namespace
}  // namespace mmlab::ops
