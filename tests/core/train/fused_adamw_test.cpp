// SPDX-License-Identifier: GPL-3.0-or-later
// FusedAdamW: on the CPU it is AdamW's own step; on a GPU with LibTorch 2.x it runs the fused
// kernel and lands where AdamW does (two parameter groups, a parameter without a gradient, a
// learning rate that changes per step), and a save/load mid-way continues the same trajectory.
#include <gtest/gtest.h>

#include <sstream>

#include "core/ops/torch_compat.h"
#include "core/train/fused_adamw.h"

namespace mmlab {
namespace {

struct Problem {
  std::vector<torch::Tensor> decay, no_decay;
  std::vector<torch::Tensor> all() const {
    auto v = decay;
    v.insert(v.end(), no_decay.begin(), no_decay.end());
    return v;
  }
};

Problem make_problem(torch::Device device) {
  torch::manual_seed(11);
  Problem p;
  for (auto sizes : {std::vector<int64_t>{6, 4}, std::vector<int64_t>{3, 5}}) {
    p.decay.push_back(torch::randn(sizes).to(device).requires_grad_(true));
  }
  p.no_decay.push_back(torch::randn({4}).to(device).requires_grad_(true));
  p.no_decay.push_back(torch::randn({2}).to(device).requires_grad_(true));  // never gets a grad
  return p;
}

template <class Opt>
std::unique_ptr<Opt> make_optimizer(const Problem& p) {
  auto opts = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(p.decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  auto nd = std::make_unique<torch::optim::AdamWOptions>(opts);
  nd->weight_decay(0.0);
  groups.emplace_back(p.no_decay, std::move(nd));
  return std::make_unique<Opt>(std::move(groups), opts);
}

// Gradients from a fixed quadratic loss of all but the last parameter.
void step(torch::optim::AdamW& opt, const Problem& p, int k) {
  for (auto& group : opt.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(1e-2 / (1 + k));
  }
  opt.zero_grad();
  torch::Tensor loss = torch::zeros({}, p.decay[0].options());
  const std::vector<torch::Tensor> params = p.all();
  for (size_t i = 0; i + 1 < params.size(); ++i) {
    const torch::Tensor& t = params[i];
    loss = loss + (t * t * static_cast<double>(i + 1)).sum() + t.sum();
  }
  loss.backward();
  opt.step();
}

void expect_same_params(const Problem& a, const Problem& b, double rtol) {
  const std::vector<torch::Tensor> pa = a.all(), pb = b.all();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::allclose(pa[i].cpu(), pb[i].cpu(), rtol, 1e-7))
        << "parameter " << i << ": max |diff| " << (pa[i] - pb[i]).abs().max().item<double>();
  }
}

TEST(FusedAdamW, OnTheCpuIsAdamWsOwnStep) {
  Problem a = make_problem(torch::kCPU), b = make_problem(torch::kCPU);
  auto fused = make_optimizer<FusedAdamW>(a);
  auto plain = make_optimizer<torch::optim::AdamW>(b);
  for (int k = 0; k < 4; ++k) {
    step(*fused, a, k);
    step(*plain, b, k);
  }
  EXPECT_FALSE(fused->last_step_fused());
  expect_same_params(a, b, 0.0);
}

TEST(FusedAdamW, OnTheGpuRunsTheFusedKernelAndLandsWhereAdamWDoes_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!compat::fused_adamw_available()) GTEST_SKIP() << "this LibTorch has no fused AdamW";
  Problem a = make_problem(torch::kCUDA), b = make_problem(torch::kCUDA);
  auto fused = make_optimizer<FusedAdamW>(a);
  auto plain = make_optimizer<torch::optim::AdamW>(b);
  for (int k = 0; k < 3; ++k) {
    step(*fused, a, k);
    step(*plain, b, k);
  }
  EXPECT_TRUE(fused->last_step_fused());
  expect_same_params(a, b, 1e-5);

  // Saved and loaded into a new optimizer (what a resume does), the trajectory goes on.
  std::stringstream saved;
  {
    torch::serialize::OutputArchive out;
    fused->save(out);
    out.save_to(saved);
  }
  auto resumed = make_optimizer<FusedAdamW>(a);
  {
    torch::serialize::InputArchive in;
    in.load_from(saved);
    resumed->load(in);
  }
  for (int k = 3; k < 6; ++k) {
    step(*resumed, a, k);
    step(*plain, b, k);
  }
  EXPECT_TRUE(resumed->last_step_fused());
  expect_same_params(a, b, 1e-5);
  EXPECT_FALSE(a.no_decay.back().grad().defined());
}

}  // namespace
}  // namespace mmlab
