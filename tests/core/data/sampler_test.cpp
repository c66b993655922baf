// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "core/util/error.h"

namespace mmlab::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Ids = std::vector<std::int32_t>;

Ids iota(int n) {
  Ids v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WindowSamplerTest, RandomWindowsAreContiguousSlicesInRange) {
  const Ids tokens = iota(1000);
  WindowSampler s(tokens, 16, 8, SamplingMode::kRandom, 7);
  for (int b = 0; b < 50; ++b) {
    const Ids batch = s.next_batch();
    ASSERT_EQ(batch.size(), 8u * 17u);
    for (int r = 0; r < 8; ++r) {
      const std::int32_t start = batch[static_cast<std::size_t>(r) * 17];
      EXPECT_LE(start + 16, 999);
      for (int k = 0; k < 17; ++k)
        EXPECT_EQ(batch[static_cast<std::size_t>(r) * 17 + k], start + k);
    }
  }
  EXPECT_EQ(s.batches(), 50u);
}

TEST(WindowSamplerTest, SameSeedSameBatchesOtherSeedOthers) {
  const Ids tokens = iota(5000);
  WindowSampler a(tokens, 32, 4, SamplingMode::kRandom, 123);
  WindowSampler b(tokens, 32, 4, SamplingMode::kRandom, 123);
  WindowSampler c(tokens, 32, 4, SamplingMode::kRandom, 124);
  for (int i = 0; i < 20; ++i) {
    const Ids x = a.next_batch();
    EXPECT_EQ(x, b.next_batch());
    EXPECT_NE(x, c.next_batch());
  }
}

TEST(WindowSamplerTest, FixedSeedGivesTheSameFirstWindowsEverywhere) {
  // Pins the exact draw so a change of generator or range reduction is noticed (it would break
  // resuming checkpoints made by an older build).
  const Ids tokens = iota(1'000'000);
  WindowSampler s(tokens, 1, 3, SamplingMode::kRandom, 42);
  const Ids batch = s.next_batch();
  std::mt19937_64 reference(42);
  const std::uint64_t n = 1'000'000 - 1;
  for (int r = 0; r < 3; ++r) {
    std::uint64_t x;
    do {
      x = reference();
    } while (x < (0 - n) % n);
    EXPECT_EQ(batch[static_cast<std::size_t>(r) * 2], static_cast<std::int32_t>(x % n));
  }
}

TEST(WindowSamplerTest, StateRestoresTheExactPosition) {
  const Ids tokens = iota(4096);
  for (SamplingMode mode : {SamplingMode::kRandom, SamplingMode::kContiguous}) {
    WindowSampler s(tokens, 64, 8, mode, 99);
    for (int i = 0; i < 5; ++i) s.next_batch();
    const std::string saved = s.state();
    const Ids a1 = s.next_batch(), a2 = s.next_batch();
    s.restore(saved);
    EXPECT_EQ(s.batches(), 5u);
    EXPECT_EQ(s.next_batch(), a1);
    EXPECT_EQ(s.next_batch(), a2);
    // A fresh sampler (as after a restart) picks up at the same place.
    WindowSampler fresh(tokens, 64, 8, mode, 1);
    fresh.restore(saved);
    EXPECT_EQ(fresh.next_batch(), a1);
    EXPECT_EQ(fresh.next_batch(), a2);
  }
}

TEST(WindowSamplerTest, RestoreRefusesAnotherConfiguration) {
  const Ids tokens = iota(4096);
  WindowSampler s(tokens, 64, 8, SamplingMode::kRandom, 99);
  const std::string saved = s.state();
  WindowSampler other_len(tokens, 32, 8, SamplingMode::kRandom, 99);
  EXPECT_THAT(message_of([&] { other_len.restore(saved); }),
              HasSubstr("made with seq_len 64, not 32"));
  const Ids shorter = iota(4000);
  WindowSampler other_stream(shorter, 64, 8, SamplingMode::kRandom, 99);
  EXPECT_THAT(message_of([&] { other_stream.restore(saved); }),
              HasSubstr("a training stream of 4096 tokens, not 4000"));
  WindowSampler other_mode(tokens, 64, 8, SamplingMode::kContiguous, 99);
  EXPECT_THAT(message_of([&] { other_mode.restore(saved); }), HasSubstr("sampling random"));
  EXPECT_THAT(message_of([&] { s.restore("{\"mode\": 3}"); }),
              HasSubstr("not a window sampler state"));
  EXPECT_THAT(message_of([&] { s.restore("garbage"); }), HasSubstr("not a window sampler state"));
}

TEST(WindowSamplerTest, ContiguousWalksInOrderAndWraps) {
  const Ids tokens = iota(20);
  WindowSampler s(tokens, 4, 2, SamplingMode::kContiguous, 0);
  EXPECT_THAT(s.next_batch(), ElementsAre(0, 1, 2, 3, 4, 4, 5, 6, 7, 8));
  EXPECT_THAT(s.next_batch(), ElementsAre(8, 9, 10, 11, 12, 12, 13, 14, 15, 16));
  // 16..20 does not fit (needs 5 tokens, 4 remain): back to the start.
  EXPECT_THAT(s.next_batch(), ElementsAre(0, 1, 2, 3, 4, 4, 5, 6, 7, 8));
}

TEST(WindowSamplerTest, TooShortStreamAndBadSizes) {
  const Ids tokens = iota(10);
  EXPECT_THAT(message_of([&] { WindowSampler s(tokens, 10, 1, SamplingMode::kRandom, 0); }),
              HasSubstr("The training data has 10 tokens, fewer than seq_len + 1 = 11."));
  EXPECT_THROW(WindowSampler(tokens, 0, 1, SamplingMode::kRandom, 0), UserError);
  EXPECT_THROW(WindowSampler(tokens, 4, 0, SamplingMode::kRandom, 0), UserError);
  EXPECT_THROW(parse_sampling_mode("shuffle"), UserError);
}

TEST(ValidationBatches, FixedStrideAndSpread) {
  const Ids tokens = iota(41);  // (41 - 1) / 4 = 10 windows of 5 tokens
  auto batches = validation_batches(tokens, 4, 2, 100);
  ASSERT_EQ(batches.size(), 5u);
  EXPECT_THAT(batches[0], ElementsAre(0, 1, 2, 3, 4, 4, 5, 6, 7, 8));
  EXPECT_THAT(batches[4], ElementsAre(32, 33, 34, 35, 36, 36, 37, 38, 39, 40));
  EXPECT_EQ(validation_batches(tokens, 4, 2, 100), batches);
  // Fewer batches than windows: spread over the whole stream.
  batches = validation_batches(tokens, 4, 1, 2);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0][0], 0);
  EXPECT_EQ(batches[1][0], 20);
  EXPECT_THAT(message_of([&] { validation_batches(tokens, 4, 11, 1); }),
              HasSubstr("too few for one batch of 11 windows of 5 tokens"));
}

}  // namespace
}  // namespace mmlab::data
