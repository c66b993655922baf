// SPDX-License-Identifier: GPL-3.0-or-later
// The norm op's reference against the definition, and the dtype a residual block's norm hands
// its mixer: the matmuls' dtype (bf16 under autocast), or fp32 when the mixer has a router.
#include <gtest/gtest.h>

#include "core/models/language_model.h"
#include "core/models/mamba_layer.h"
#include "core/models/switch_moe.h"
#include "core/ops/norm_ops.h"
#include "core/ops/torch_compat.h"

namespace mmlab::ops {
namespace {

NormArgs random_rows(int64_t rows, int64_t width, bool rms) {
  NormArgs a;
  a.x = torch::randn({rows, width}) * 3.0 + 1.0;
  a.weight = 1.0 + 0.2 * torch::randn({width});
  if (!rms) a.bias = 0.2 * torch::randn({width});
  a.rms = rms;
  a.eps = 1e-5;
  return a;
}

TEST(NormReference, LayerNormAndRmsNormAreTheirDefinitions) {
  torch::manual_seed(11);
  for (bool rms : {false, true}) {
    NormArgs a = random_rows(7, 33, rms);
    a.out_dtype = torch::kFloat;
    const auto got = norm_reference(a);
    auto x = a.x.to(torch::kDouble);  // (7, 33)
    auto centred = rms ? x : x - x.mean(-1, /*keepdim=*/true);
    auto want =
        centred * torch::rsqrt(centred.pow(2).mean(-1, true) + a.eps) * a.weight.to(torch::kDouble);
    if (!rms) want = want + a.bias.to(torch::kDouble);
    EXPECT_LT((got.to(torch::kDouble) - want).abs().max().item<double>(), 1e-5) << rms;
  }
}

TEST(NormReference, ABf16ResultIsTheFp32ResultRoundedOnce) {
  torch::manual_seed(12);
  NormArgs a = random_rows(5, 64, false);
  a.out_dtype = torch::kFloat;
  const auto fp32 = norm_reference(a);
  a.out_dtype = torch::kBFloat16;
  const auto bf16 = norm_reference(a);
  ASSERT_EQ(bf16.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(bf16, fp32.to(torch::kBFloat16)));
}

// Records the dtype it is given; adds nothing to the residual stream.
class DtypeSpy : public MixerImpl {
 public:
  explicit DtypeSpy(bool router) : router_(router) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    seen = x.scalar_type();
    return torch::zeros_like(x);
  }
  torch::Tensor decode(const torch::Tensor& x, LayerCache& cache) override {
    (void)cache;
    return forward(x);
  }
  bool reads_input_in_fp32() const override { return router_; }
  torch::ScalarType seen = torch::kDouble;

 private:
  bool router_;
};

torch::ScalarType normed_dtype(bool router, torch::Device device, bool autocast) {
  auto spy = std::make_shared<DtypeSpy>(router);
  ResidualBlock block(Norm(16, "layernorm", 1e-5), spy);
  block->to(device);
  auto h = torch::randn({2, 3, 16}, torch::TensorOptions().device(device));  // (B, L, D) fp32
  compat::CudaAutocast scope(autocast);
  auto out = block->forward(h);
  EXPECT_TRUE(torch::equal(out, h)) << "the spy adds zeros";
  return spy->seen;
}

TEST(NormInBlock, WithoutAutocastTheMixerGetsTheResidualDtype) {
  EXPECT_EQ(normed_dtype(false, torch::kCPU, false), torch::kFloat);
  EXPECT_EQ(normed_dtype(true, torch::kCPU, false), torch::kFloat);
}

TEST(NormInBlock, UnderAutocastMatmulsGetBf16AndARouterFp32_CUDA) {
  EXPECT_EQ(normed_dtype(false, torch::kCUDA, true), torch::kBFloat16);
  EXPECT_EQ(normed_dtype(true, torch::kCUDA, true), torch::kFloat);
}

TEST(NormInBlock, TheMixersWithARouterOnTheirInputSayTheyReadFp32) {
  const SwitchMoeOptions moe(16, 16, 32, 4);
  EXPECT_TRUE(SwitchMoeImpl(moe).reads_input_in_fp32());
  EXPECT_FALSE(MambaLayerImpl(MambaLayerOptions(16)).reads_input_in_fp32());
  EXPECT_TRUE(MambaLayerImpl(MambaLayerOptions(16).conv_moe(true).moe(moe)).reads_input_in_fp32());
  // A MoE out_proj reads the scan's output, not the block's input.
  EXPECT_FALSE(MambaLayerImpl(MambaLayerOptions(16).out_moe(true).moe(moe)).reads_input_in_fp32());
}

}  // namespace
}  // namespace mmlab::ops
