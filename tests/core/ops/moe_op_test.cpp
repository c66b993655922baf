// SPDX-License-Identifier: GPL-3.0-or-later
// The switch_moe op: its implementations against the reference and against values worked out by
// hand, on the routings where capacity bookkeeping goes wrong (every token dropped but one, an
// expert with no tokens, capacity exactly full, T not a multiple of X, capacity 0), fp32 and bf16;
// on a GPU, the sync-free implementation never waits for the device.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "core/ops/moe_ops.h"
#include "core/ops/torch_compat.h"
#include "op_test_support.h"

namespace mmlab::ops {
namespace {

struct Routing {
  const char* name;
  std::vector<int64_t> expert;  // the argmax expert of each token
  int64_t X, capacity;
};

const std::vector<Routing>& routings() {
  static const std::vector<Routing> r = {
      {"AllButOneDropped", {2, 2, 2, 2, 2, 2, 2}, 3, 1},
      {"AnExpertWithNoTokens", {0, 0, 1, 0, 1, 1, 0, 1}, 3, 2},  // expert 2 idle
      {"CapacityExactlyFull", {1, 0, 3, 2, 0, 1, 2, 3}, 4, 2},
      {"TokensNotAMultipleOfExperts", {0, 1, 0, 2, 1, 0, 0, 2, 1, 1, 0}, 3, 3},
      {"CapacityZero", {0, 1, 0}, 4, 0},
      {"NoCapacityLimit", {1, 1, 1, 0, 1}, 2, 5},
  };
  return r;
}

struct Outcome {
  SwitchMoeResult r;
  torch::Tensor dx, dprobs, dw1, dw2;
  torch::Tensor x, probs, w1, w2;  // the inputs
};

// Random x and experts; router probabilities whose argmax is the routing's expert per token.
// With `no_sync`, the op and its backward run under compat::CudaSyncIsError.
Outcome run(const Routing& rt, torch::ScalarType dtype, torch::Device device,
            const SwitchMoeRegistry::Fn& fn, bool no_sync = false) {
  torch::manual_seed(7);
  const int64_t T = static_cast<int64_t>(rt.expert.size()), D = 6, De = 5;
  const auto f32 = torch::TensorOptions().device(device);
  auto x = torch::randn({T, D}, f32).to(dtype).requires_grad_(true);
  auto logits = torch::randn({T, rt.X}, f32) * 0.3;
  auto chosen = torch::tensor(rt.expert, torch::kLong).to(device);
  logits.scatter_(1, chosen.unsqueeze(1), 3.0);
  auto probs = torch::softmax(logits, -1).requires_grad_(true);
  auto w1 = (torch::randn({rt.X, D, De}, f32) * 0.5).requires_grad_(true);
  auto w2 = (torch::randn({rt.X, De, D}, f32) * 0.5).requires_grad_(true);
  SwitchMoeArgs a;
  a.x = x, a.probs = probs, a.w1 = w1, a.w2 = w2, a.capacity = rt.capacity;
  a.needs_grad = true;
  auto w = torch::randn({T, D}, f32);
  Outcome o;
  {
    std::optional<compat::CudaSyncIsError> guard;
    if (no_sync) guard.emplace();
    o.r = fn(a);
    // Capacity 0 keeps nothing: the output is a constant zero.
    if (o.r.y.requires_grad()) (o.r.y.to(torch::kFloat) * w).sum().backward();
  }
  o.x = x.detach(), o.probs = probs.detach(), o.w1 = w1.detach(), o.w2 = w2.detach();
  o.dx = x.grad(), o.dprobs = probs.grad(), o.dw1 = w1.grad(), o.dw2 = w2.grad();
  return o;
}

// The tokens a routing keeps: the first `capacity` of each expert, in token order.
std::vector<bool> kept_tokens(const Routing& rt) {
  std::vector<int64_t> seen(static_cast<size_t>(rt.X), 0);
  std::vector<bool> kept;
  for (int64_t e : rt.expert) kept.push_back(seen[static_cast<size_t>(e)]++ < rt.capacity);
  return kept;
}

void expect_hand_values(const Routing& rt, const Outcome& o) {
  const std::vector<bool> kept = kept_tokens(rt);
  int64_t dropped = 0;
  for (bool k : kept) dropped += k ? 0 : 1;
  EXPECT_EQ(o.r.dropped.item<int64_t>(), dropped);
  for (int64_t e = 0; e < rt.X; ++e) {
    const int64_t want = std::count(rt.expert.begin(), rt.expert.end(), e);
    EXPECT_EQ(o.r.counts[e].item<int64_t>(), want) << "expert " << e;
  }
  // Kept tokens: p_I relu(x w1[I]) w2[I], worked out per token in double; dropped: zero, and no
  // gradient reaches them.
  const double tol = o.r.y.scalar_type() == torch::kBFloat16 ? 3e-2 : 1e-5;
  for (size_t t = 0; t < kept.size(); ++t) {
    const auto ti = static_cast<int64_t>(t);
    const int64_t e = rt.expert[t];
    const double grad = o.dx.defined() ? o.dx[ti].abs().sum().item<double>() : 0.0;
    torch::Tensor want = torch::zeros({o.x.size(1)}, torch::kDouble);
    if (kept[t]) {
      auto xt = o.x[ti].cpu().to(torch::kDouble).unsqueeze(0);
      auto hidden = torch::relu(xt.mm(o.w1[e].cpu().to(torch::kDouble)));
      want = (hidden.mm(o.w2[e].cpu().to(torch::kDouble)) * o.probs[ti][e].item<double>())[0];
    } else {
      EXPECT_EQ(grad, 0.0) << "dropped token " << t << " has a gradient";
    }
    const torch::Tensor got = o.r.y[ti].cpu().to(torch::kDouble);
    EXPECT_LE((got - want).abs().max().item<double>(),
              tol * std::max(1.0, want.abs().max().item<double>()))
        << (kept[t] ? "kept" : "dropped") << " token " << t << ": " << got << " vs " << want;
  }
}

void expect_same(const Outcome& got, const Outcome& want, torch::ScalarType dtype) {
  const test::Tolerance tol = test::tolerance_for(dtype);
  EXPECT_TRUE(test::close(got.r.y, want.r.y, tol.out)) << test::difference(got.r.y, want.r.y);
  EXPECT_TRUE(torch::equal(got.r.counts.cpu(), want.r.counts.cpu()));
  EXPECT_EQ(got.r.dropped.item<int64_t>(), want.r.dropped.item<int64_t>());
  const std::pair<const char*, std::pair<torch::Tensor, torch::Tensor>> grads[] = {
      {"x", {got.dx, want.dx}},
      {"probs", {got.dprobs, want.dprobs}},
      {"w1", {got.dw1, want.dw1}},
      {"w2", {got.dw2, want.dw2}}};
  for (const auto& [name, g] : grads) {
    if (!g.second.defined()) {  // capacity 0: nothing reaches the leaf
      EXPECT_TRUE(!g.first.defined() || g.first.abs().max().item<double>() == 0.0) << name;
      continue;
    }
    EXPECT_TRUE(test::close(g.first, g.second, tol.grad))
        << "grad " << name << ": " << test::difference(g.first, g.second);
  }
}

class SwitchMoeOp : public ::testing::TestWithParam<std::tuple<size_t, torch::ScalarType>> {};

TEST_P(SwitchMoeOp, SyncFreeEqualsTheReferenceAndTheHandValues) {
  const auto [i, dtype] = GetParam();
  const Routing& rt = routings()[i];
  const Outcome ref = run(rt, dtype, torch::kCPU, switch_moe_reference);
  const Outcome got = run(rt, dtype, torch::kCPU, switch_moe_sync_free);
  expect_hand_values(rt, ref);
  expect_hand_values(rt, got);
  expect_same(got, ref, dtype);
}

TEST_P(SwitchMoeOp, OnTheGpuAutoPicksSyncFreeWhichNeverWaitsForTheDevice_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto [i, dtype] = GetParam();
  const Routing& rt = routings()[i];
  ASSERT_EQ(switch_moe_registry().pick(torch::kCUDA, SwitchMoeArgs{}).name, "sync_free");
  const Outcome ref = run(rt, dtype, torch::kCUDA, switch_moe_reference);
  // The inputs are made (with host copies) outside the guard; the op and its backward inside.
  const Outcome got = run(rt, dtype, torch::kCUDA, switch_moe, /*no_sync=*/true);
  expect_hand_values(rt, got);
  expect_same(got, ref, dtype);
}

INSTANTIATE_TEST_SUITE_P(Routings, SwitchMoeOp,
                         ::testing::Combine(::testing::Range<size_t>(0, 6),
                                            ::testing::Values(torch::kFloat, torch::kBFloat16)),
                         [](const auto& info) {
                           return std::string(routings()[std::get<0>(info.param)].name) +
                                  (std::get<1>(info.param) == torch::kBFloat16 ? "_bf16" : "_fp32");
                         });

}  // namespace
}  // namespace mmlab::ops
