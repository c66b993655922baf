// SPDX-License-Identifier: GPL-3.0-or-later
// The out-of-memory advice: the need from the allocator's figures, a batch that divides the
// tokens per step and fits by the estimate, the allocator's "Tried to allocate" parsed.
#include <gtest/gtest.h>

#include "core/train/memory_advice.h"

namespace mmlab {
namespace {

constexpr int64_t kGB = 1000000000;

MemoryAtFailure h200_at_batch_3000() {
  MemoryAtFailure m;
  m.peak_bytes = 130 * kGB;
  m.requested_bytes = 20 * kGB;
  m.total_bytes = 150 * kGB;
  m.free_bytes = 140 * kGB;
  m.weight_bytes = 1 * kGB;
  return m;
}

TEST(MemoryAdvice, TheNeedIsThePeakPlusTheFailedAllocation) {
  EXPECT_EQ(needed_bytes(h200_at_batch_3000()), 150 * kGB);
}

TEST(MemoryAdvice, AdvisesTheLargestDividingBatchThatFitsByTheEstimate) {
  // per row (150 - 1) GB / 3000; room 0.9 * 140 - 4 = 122 GB -> 2456 rows; 3000 * 1 tokens
  // per step: the largest divisor of 3000 up to 2456 is 1500.
  const auto a = advise_batch(h200_at_batch_3000(), 3000, 1);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->batch_size, 1500);
  EXPECT_EQ(a->grad_accum, 2);
  // With grad_accum 3 the step has 9000 rows: 2250 divides it.
  const auto b = advise_batch(h200_at_batch_3000(), 3000, 3);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->batch_size, 2250);
  EXPECT_EQ(b->grad_accum, 4);
}

TEST(MemoryAdvice, NothingFitsWhenTheWeightsAloneDoNot) {
  MemoryAtFailure m = h200_at_batch_3000();
  m.weight_bytes = 40 * kGB;  // 4 x 40 GB > 0.9 x 140 GB
  EXPECT_FALSE(advise_batch(m, 8, 1).has_value());
  const std::string s = out_of_memory_sentence("cuda:0 (NVIDIA H200)", m, 8, 256, 1);
  EXPECT_NE(s.find("smaller model"), std::string::npos) << s;
}

TEST(MemoryAdvice, ParsesTheAllocatorsRequest) {
  EXPECT_EQ(requested_bytes_in("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 139 GiB "
                               "total capacity)"),
            2LL * 1073741824);
  EXPECT_EQ(requested_bytes_in("Tried to allocate 512.00 MiB"), 512LL * 1048576);
  EXPECT_EQ(requested_bytes_in("DefaultCPUAllocator: can't allocate memory"), 0);
}

TEST(MemoryAdvice, TheSentenceNamesTheNeedTheCardAndTheAdvice) {
  const std::string s =
      out_of_memory_sentence("cuda:0 (NVIDIA H200)", h200_at_batch_3000(), 3000, 256, 1);
  EXPECT_EQ(s,
            "Out of memory on cuda:0 (NVIDIA H200): batch_size 3000 x seq_len 256 needed more than "
            "150.0 GB and the card has 150.0 GB (140.0 GB free when the run started); "
            "train.batch_size 1500 with train.grad_accum 2 keeps the tokens per step and should "
            "fit.");
}

TEST(MemoryAdvice, WithoutTheCardsFiguresItSaysWhatToLower) {
  EXPECT_EQ(out_of_memory_sentence("cpu", MemoryAtFailure{}, 64, 1024, 1),
            "Out of memory on cpu (batch_size 64, seq_len 1024). Lower train.batch_size (raise "
            "train.grad_accum to keep the tokens per step) or use a smaller model.");
}

}  // namespace
}  // namespace mmlab
