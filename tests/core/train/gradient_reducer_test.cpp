// SPDX-License-Identifier: GPL-3.0-or-later
// The gradient all-reduce on two real Gloo ranks (two threads of this process, each with its own
// store client and process group, as two processes would have).
#include "core/train/gradient_reducer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "core/train/rank_group.h"
#include "test_support.h"

namespace mmlab {
namespace {

// Runs `body(rank, group)` on ranks 0 and 1; returns what each threw ("" when nothing).
std::vector<std::string> on_two_ranks(const std::function<void(int, RankGroup&)>& body) {
  const int port = test::free_loopback_port();
  std::vector<std::string> errors(2);
  auto run = [&](int rank) {
    try {
      RankEnv env;
      env.rank = rank;
      env.world_size = 2;
      env.local_rank = rank;
      env.master_addr = "127.0.0.1";
      env.master_port = port;
      Rendezvous ranks(env, std::chrono::seconds(60));
      auto group = ranks.open_group("reducer-test", torch::kCPU, std::chrono::seconds(60));
      body(rank, *group);
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread other(run, 1);
  run(0);
  other.join();
  return errors;
}

TEST(GradientReducer, AveragesAccumulatedGradientsAndCountsMissingOnesAsZeros) {
  if (!process_groups_built(torch::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  std::vector<torch::Tensor> w1(2), w2(2), w3(2);
  std::vector<size_t> started(2), buckets(2);
  const auto errors = on_two_ranks([&](int rank, RankGroup& group) {
    // The same start on both ranks, from a generator of each rank's own: the ranks are threads
    // of one process, which would otherwise draw from one global generator in turns.
    at::Generator gen = at::detail::createCPUGenerator(7);
    auto a = torch::randn({3, 4}, gen).requires_grad_();
    auto b = torch::randn({5}, gen).requires_grad_();
    auto c = torch::randn({2, 2}, gen).requires_grad_();
    // Tiny buckets: one per parameter, started in the order c, b, a.
    GradientReducer reducer({a, b, c}, group, /*bucket_bytes=*/16);
    buckets[rank] = reducer.buckets();
    for (int micro = 0; micro < 2; ++micro) {
      // d/da = 1 + rank + 10 micro; d/db = 2 b (rank + 1); d/dc = micro + 1 on rank 0 only (an
      // expert no token reached on rank 1).
      auto loss = (a * (1.0 + rank + 10.0 * micro)).sum() + (b * b).sum() * (rank + 1.0);
      if (rank == 0) loss = loss + c.sum() * (micro + 1.0);
      if (micro == 1) reducer.arm();  // only the last micro-batch's backward is reduced
      loss.backward();
    }
    reducer.finish();
    started[rank] = reducer.started_in_backward();
    w1[rank] = a.grad().clone();
    w2[rank] = (b.grad() / b.detach()).clone();
    w3[rank] = c.grad().clone();
  });
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(buckets[r], 3u);
    // (1 + 11 on rank 0, 2 + 12 on rank 1) / 2 ranks.
    EXPECT_TRUE(torch::allclose(w1[r], torch::full({3, 4}, 13.0)));
    // 2 micro-batches of 2 b (rank + 1), averaged: 2 * 2 * (1 + 2) / 2 = 6 b.
    EXPECT_TRUE(torch::allclose(w2[r], torch::full({5}, 6.0), 1e-5, 1e-5));
    // (1 + 2) on rank 0, none on rank 1: 1.5 on both.
    ASSERT_TRUE(w3[r].defined());
    EXPECT_TRUE(torch::allclose(w3[r], torch::full({2, 2}, 1.5)));
  }
  // Rank 0 had every gradient during its backward pass: all three buckets started there. On
  // rank 1 the first bucket (c's) never became ready, and buckets start in order on every rank.
  EXPECT_EQ(started[0], 3u);
  EXPECT_EQ(started[1], 0u);
}

TEST(GradientReducer, StartsEveryBucketInsideTheBackwardPassWhenAllGradientsCome) {
  if (!process_groups_built(torch::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  std::vector<size_t> started(2);
  std::vector<torch::Tensor> grads(2);
  const auto errors = on_two_ranks([&](int rank, RankGroup& group) {
    torch::manual_seed(3);
    torch::nn::Linear l1(8, 8), l2(8, 4);
    std::vector<torch::Tensor> params = l1->parameters();
    for (const auto& p : l2->parameters()) params.push_back(p);
    GradientReducer reducer(params, group, /*bucket_bytes=*/64);
    auto x = torch::full({2, 8}, 1.0 + rank);
    reducer.arm();
    l2(torch::relu(l1(x))).pow(2).sum().backward();
    reducer.finish();
    started[rank] = reducer.started_in_backward();
    EXPECT_EQ(started[rank], reducer.buckets());
    EXPECT_GT(reducer.buckets(), 2u);
    grads[rank] = l1->weight.grad().clone();
  });
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_TRUE(torch::equal(grads[0], grads[1]));
}

TEST(RankGroup, ARankThatLeftIsOneSentence) {
  if (!process_groups_built(torch::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  const auto errors = on_two_ranks([&](int rank, RankGroup& group) {
    // Connected on both sides first: a rank that leaves while the other is still connecting is
    // another sentence ("while connecting the process group"). Rank 0 only sends here, so it is
    // done whatever rank 1 does next.
    group.broadcast_bytes("connected", "checking the connection");
    if (rank == 1) return;  // leaves: its process group closes
    group.sum(torch::ones({4}), "averaging the gradients");
  });
  EXPECT_EQ(errors[1], "");
  EXPECT_NE(errors[0].find("Rank 0 of 2 lost the other ranks while averaging the gradients"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace mmlab

namespace mmlab {
namespace {

// The NCCL path on one GPU: a world of one rank still opens a real NCCL communicator (a run of
// one process never does; this is the smoke test of the GPU build).
TEST(GradientReducer, OneNcclRankKeepsTheGradientsOnTheGpu_CUDA) {
  RankEnv env;
  env.master_addr = "127.0.0.1";
  env.master_port = test::free_loopback_port();
  Rendezvous ranks(env, std::chrono::seconds(60));
  const torch::Device gpu(torch::kCUDA, 0);
  auto group = ranks.open_group("nccl-smoke", gpu, std::chrono::seconds(60));
  EXPECT_EQ(group->broadcast_bytes("checkpoint bytes", "sending"), "checkpoint bytes");
  torch::manual_seed(5);
  torch::nn::Linear l1(16, 16), l2(16, 8);
  l1->to(gpu);
  l2->to(gpu);
  std::vector<torch::Tensor> params = l1->parameters();
  for (const auto& p : l2->parameters()) params.push_back(p);
  auto x = torch::randn({4, 16}, gpu);
  l2(torch::relu(l1(x))).pow(2).sum().backward();
  std::vector<torch::Tensor> local;
  for (auto& p : params) {
    local.push_back(p.grad().clone());
    p.mutable_grad().zero_();
  }
  GradientReducer reducer(params, *group, /*bucket_bytes=*/512);
  reducer.arm();
  l2(torch::relu(l1(x))).pow(2).sum().backward();
  reducer.finish();
  EXPECT_EQ(reducer.started_in_backward(), reducer.buckets());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].grad().is_cuda());
    EXPECT_TRUE(torch::allclose(params[i].grad(), local[i], 1e-5, 1e-6)) << i;
  }
}

}  // namespace
}  // namespace mmlab
