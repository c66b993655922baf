// SPDX-License-Identifier: GPL-3.0-or-later
// What the attention-heads op (core/ops/attention_ops.h) means, on its reference: RoPE makes a
// query-key score depend only on the distance between their positions, rotates each pair without
// changing its length, continues a sequence from `offset` exactly as the whole sequence does, and
// passes v through. Every implementation is held to the reference by the op harness.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops/attention_ops.h"

namespace mmlab::ops {
namespace {

constexpr int64_t kB = 2, kL = 9, kH = 3, kHd = 8;

AttentionHeads heads_of(const torch::Tensor& qkv, int64_t offset) {
  AttentionHeadsArgs a;
  a.qkv = qkv;  // (B, L, 3, H, hd)
  a.offset = offset;
  return attention_heads_reference(a);
}

TEST(AttentionHeads, ScoresDependOnlyOnTheDistanceBetweenPositions) {
  torch::manual_seed(3);
  auto qkv = torch::randn({kB, kL, 3, kH, kHd}, torch::kDouble);
  const AttentionHeads at0 = heads_of(qkv, 0), at7 = heads_of(qkv, 7);
  auto scores = [](const AttentionHeads& h) { return torch::matmul(h.q, h.k.transpose(-2, -1)); };
  // The angles are fp32 (as the kernel reads them): equal to their rounding.
  EXPECT_TRUE(torch::allclose(scores(at0), scores(at7), 1e-5, 1e-5));
  // And the rotation is there: q itself moves with the offset.
  EXPECT_GT((at0.q - at7.q).abs().max().item<double>(), 0.1);
}

TEST(AttentionHeads, RotatesEachPairWithoutChangingItsLengthAndPassesVThrough) {
  torch::manual_seed(4);
  auto qkv = torch::randn({kB, kL, 3, kH, kHd}, torch::kDouble);
  const AttentionHeads h = heads_of(qkv, 5);
  auto pair_lengths = [](const torch::Tensor& x) {  // (..., hd) -> (..., hd/2)
    const int64_t half = x.size(-1) / 2;
    return torch::hypot(x.narrow(-1, 0, half), x.narrow(-1, half, half));
  };
  auto parts = qkv.permute({2, 0, 3, 1, 4});  // (3, B, H, L, hd)
  EXPECT_TRUE(torch::allclose(pair_lengths(h.q), pair_lengths(parts[0]), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(pair_lengths(h.k), pair_lengths(parts[1]), 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(h.v, parts[2]));
  // Position 0 is not rotated.
  EXPECT_TRUE(torch::allclose(heads_of(qkv, 0).q.select(2, 0), parts[0].select(2, 0)));
}

TEST(AttentionHeads, OneStepAtItsOffsetEqualsThatStepOfTheWholeSequence) {
  torch::manual_seed(5);
  auto qkv = torch::randn({kB, kL, 3, kH, kHd});
  const AttentionHeads whole = heads_of(qkv, 0);
  for (int64_t t : {int64_t{0}, int64_t{4}, kL - 1}) {
    const AttentionHeads step = heads_of(qkv.narrow(1, t, 1), t);
    EXPECT_TRUE(torch::equal(step.q, whole.q.narrow(2, t, 1))) << "step " << t;
    EXPECT_TRUE(torch::equal(step.k, whole.k.narrow(2, t, 1))) << "step " << t;
  }
}

// The tables are views of one kept table that grows: the rows of a position stay the same.
TEST(AttentionHeads, RotationTablesAreTheSameRowsBeforeAndAfterTheirTableGrows) {
  const torch::Device cpu(torch::kCPU);
  const double theta = 5000.0;  // a table of its own
  const auto [cos0, sin0] = rope_cos_sin(4, kHd, 10, theta, cpu);
  EXPECT_EQ(cos0.sizes(), (torch::IntArrayRef{4, kHd / 2}));
  const auto [cos_far, sin_far] = rope_cos_sin(2, kHd, 5000, theta, cpu);  // grows it
  EXPECT_EQ(cos_far.size(0), 2);
  const auto [cos1, sin1] = rope_cos_sin(4, kHd, 10, theta, cpu);
  EXPECT_TRUE(torch::equal(cos0, cos1));
  EXPECT_TRUE(torch::equal(sin0, sin1));
  const auto [cos_all, sin_all] = rope_cos_sin(20, kHd, 0, theta, cpu);
  EXPECT_TRUE(torch::equal(cos_all.narrow(0, 10, 4), cos0));
  // Position 0 is no rotation; position 10's first pair turns by 10 radians.
  EXPECT_TRUE(torch::equal(cos_all[0], torch::ones({kHd / 2})));
  EXPECT_TRUE(torch::equal(sin_all[0], torch::zeros({kHd / 2})));
  EXPECT_NEAR(cos0[0][0].item<double>(), std::cos(10.0), 1e-6);
  EXPECT_NEAR(sin0[0][0].item<double>(), std::sin(10.0), 1e-6);
}

}  // namespace
}  // namespace mmlab::ops
