// SPDX-License-Identifier: GPL-3.0-or-later
// clip_grad_norm_on_device gives LibTorch's clip_grad_norm_ results (the norm and the scaled
// gradients) without a host read: clipping on and off, no limit, parameters without gradients.
#include <gtest/gtest.h>

#include <limits>

#include "core/train/grad_clip.h"

namespace mmlab {
namespace {

std::vector<torch::Tensor> params_with_grads(double grad_scale) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> ps;
  for (auto sizes :
       {std::vector<int64_t>{7, 3}, std::vector<int64_t>{11}, std::vector<int64_t>{2, 2, 5}}) {
    auto p = torch::randn(sizes).requires_grad_(true);
    p.mutable_grad() = torch::randn(sizes) * grad_scale;
    ps.push_back(p);
  }
  ps.push_back(torch::randn({4}).requires_grad_(true));  // no gradient
  return ps;
}

void expect_as_libtorch(double grad_scale, double max_norm) {
  auto mine = params_with_grads(grad_scale), theirs = params_with_grads(grad_scale);
  const torch::Tensor norm = clip_grad_norm_on_device(mine, max_norm);
  const double want = torch::nn::utils::clip_grad_norm_(theirs, max_norm);
  EXPECT_NEAR(norm.item<double>(), want, 1e-6 * want);
  for (size_t i = 0; i < mine.size(); ++i) {
    ASSERT_EQ(mine[i].grad().defined(), theirs[i].grad().defined()) << i;
    if (!mine[i].grad().defined()) continue;
    EXPECT_TRUE(torch::allclose(mine[i].grad(), theirs[i].grad(), 1e-6, 1e-7)) << i;
  }
}

TEST(ClipGradNormOnDevice, ScalesLikeLibTorchWhenTheNormIsOverTheLimit) {
  expect_as_libtorch(3.0, 0.5);
  auto ps = params_with_grads(3.0);
  clip_grad_norm_on_device(ps, 0.5);
  std::vector<torch::Tensor> grads;
  for (auto& p : ps)
    if (p.grad().defined()) grads.push_back(p.grad().flatten());
  EXPECT_NEAR(torch::cat(grads).norm().item<double>(), 0.5, 1e-5);
}

TEST(ClipGradNormOnDevice, LeavesGradientsUnderTheLimitExactlyAsTheyAre) {
  auto ps = params_with_grads(1e-3), before = params_with_grads(1e-3);
  clip_grad_norm_on_device(ps, 0.5);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps[i].grad().defined()) {
      EXPECT_TRUE(torch::equal(ps[i].grad(), before[i].grad())) << i;
    }
  }
  expect_as_libtorch(1e-3, 0.5);
}

TEST(ClipGradNormOnDevice, AnInfiniteLimitOnlyMeasures) {
  expect_as_libtorch(3.0, std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace mmlab
