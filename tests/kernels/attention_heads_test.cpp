// SPDX-License-Identifier: GPL-3.0-or-later
// attention_heads' "cuda" implementation beyond the op harness, without a GPU: what its why_not
// refuses (on meta tensors, as validation asks it), and train.ops refusing it for a model whose
// heads it cannot run, in one sentence naming the op, the implementation and the property.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/models/op_choice.h"
#include "core/ops/attention_ops.h"
#include "core/util/error.h"

namespace mmlab {
namespace {

using ::testing::HasSubstr;

std::string why_not(const torch::Tensor& qkv) {
  ops::AttentionHeadsArgs a;
  a.qkv = qkv;
  return ops::attention_heads_registry().why_not("cuda", torch::kCUDA, a);
}

TEST(AttentionHeadsKernel, WhyNotNamesWhatItCannotRun) {
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  EXPECT_EQ(why_not(torch::empty({2, 5, 3, 4, 64}, meta.dtype(torch::kBFloat16))), "");
  EXPECT_EQ(why_not(torch::empty({2, 5, 3, 4, 64}, meta)), "");
  EXPECT_THAT(why_not(torch::empty({2, 5, 3, 4, 64}, meta.dtype(torch::kDouble))),
              HasSubstr("dtype Double"));
  EXPECT_THAT(why_not(torch::empty({2, 5, 3, 4, 7}, meta)), HasSubstr("odd head dim 7"));
  EXPECT_THAT(why_not(torch::empty({2, 5, 2, 4, 64}, meta)), HasSubstr("not (B, L, 3, H, hd)"));
  EXPECT_THAT(why_not(torch::empty({10, 3, 4, 64}, meta)), HasSubstr("4-D, not 5-D"));
  EXPECT_THAT(why_not(torch::empty({2, 5, 3, 64, 4}, meta).transpose(3, 4)),
              HasSubstr("not contiguous along the head dim"));
  EXPECT_THAT(why_not(torch::empty({2, 5, 3, 4, 64})), HasSubstr("on cpu"));
}

TEST(AttentionHeadsKernel, TrainOpsRefusesItForHeadsItCannotRun) {
  RunConfig r;
  r.name = "t";
  r.model.family = "transformer";
  r.model.d_model = 48;
  r.model.head_dim = 3;  // 16 heads of 3: odd
  r.model.n_block = 1;
  r.train.batch_size = 2;
  r.train.seq_len = 16;
  r.train.device = "cuda";
  r.train.ops.per_op["attention_heads"] = "cuda";
  try {
    check_ops_choice(r);
    FAIL() << "an odd head dim was accepted";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("op attention_heads cannot use implementation 'cuda'"));
    EXPECT_THAT(e.message(), HasSubstr("odd head dim 3"));
    EXPECT_EQ(e.message().find(". "), std::string::npos) << e.message();  // one sentence
  }
  r.model.head_dim = 4;
  EXPECT_NO_THROW(check_ops_choice(r));
}

}  // namespace
}  // namespace mmlab
