// SPDX-License-Identifier: GPL-3.0-or-later
// mamba_inner's "cuda" implementation beyond the op harness (tests/core/ops): without a GPU, the
// gradients of its products (the LibTorch code between its kernels) against autograd, why_not's
// answers on meta tensors, and train.ops refusing it for shapes it cannot run; on a GPU, a whole
// Mamba layer through it against the reference under bf16 autocast and in fp32 (autocast's
// dtypes), and its forward without gradients against its training forward.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/models/mamba_layer.h"
#include "core/models/op_choice.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/torch_compat.h"
#include "core/util/error.h"
#include "kernels/src/mamba_inner_op.h"

namespace mmlab {
namespace {

using ::testing::HasSubstr;

/// max |got - want| <= tol * max(1, max |want|).
void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tol,
                  const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_TRUE(want.defined()) << what << ": no reference";
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  auto g = got.to(torch::kCPU, torch::kDouble), w = want.to(torch::kCPU, torch::kDouble);
  ASSERT_TRUE(torch::isfinite(g).all().item<bool>()) << what << " has NaN or Inf";
  const double scale = std::max(1.0, w.abs().max().item<double>());
  const double diff = (g - w).abs().max().item<double>();
  EXPECT_LE(diff, tol * scale) << what << ": max |diff| " << diff << " at scale " << scale;
}

// --- the products' gradients (no GPU) ------------------------------------------------------------

class MambaInnerProducts : public ::testing::TestWithParam<torch::Dtype> {};

TEST_P(MambaInnerProducts, BackwardEqualsAutogradOfTheProducts) {
  const torch::Dtype dtype = GetParam();
  const int64_t B = 3, Di = 12, L = 9, N = 4, R = 2;
  torch::manual_seed(11);
  const auto o = torch::TensorOptions().dtype(dtype);
  auto W_x = torch::randn({R + 2 * N, Di}, o).requires_grad_();
  auto W_dt = torch::randn({Di, R}, o).requires_grad_();
  auto u = torch::randn({B, Di, L}, o).requires_grad_();
  // The gradients the scan hands the products: of delta, B, C (fp32 accumulators) and u.
  auto g_delta = torch::randn({B, Di, L}, o);
  auto g_B = torch::randn({B, N, L}, o);
  auto g_C = torch::randn({B, N, L}, o);
  auto g_u = torch::randn({B, Di, L}, o);

  auto x_dbl = ops::left_multiply(W_x, u);  // (B, R+2N, L)
  kernels::InnerScanInputs in = kernels::inner_scan_inputs(W_dt, x_dbl, N);
  EXPECT_TRUE(in.B.is_contiguous());
  EXPECT_TRUE(in.C.is_contiguous());
  EXPECT_TRUE(torch::equal(in.C, x_dbl.narrow(1, R + N, N)));
  auto loss =
      (in.delta * g_delta).sum() + (in.B * g_B).sum() + (in.C * g_C).sum() + (u * g_u).sum();
  loss.backward();

  kernels::InnerProductGrads got = kernels::inner_products_backward(
      W_x.detach(), W_dt.detach(), u.detach(), x_dbl.detach(), g_delta, g_B, g_C, g_u.clone());
  const double tol = dtype == torch::kDouble ? 1e-12 : 1e-5;
  expect_close(got.du, u.grad(), tol, "du");
  expect_close(got.dx_proj_weight, W_x.grad(), tol, "dW_x");
  expect_close(got.dt_proj_weight, W_dt.grad(), tol, "dW_dt");
  EXPECT_EQ(got.du.scalar_type(), dtype);
  EXPECT_EQ(got.dx_proj_weight.scalar_type(), dtype);  // fp32 or double sums
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MambaInnerProducts,
                         ::testing::Values(torch::kFloat, torch::kDouble),
                         [](const ::testing::TestParamInfo<torch::Dtype>& i) {
                           return i.param == torch::kDouble ? std::string("fp64")
                                                            : std::string("fp32");
                         });

// --- why_not (no GPU) ----------------------------------------------------------------------------

torch::Tensor meta(torch::IntArrayRef sizes, torch::Dtype dtype = torch::kFloat) {
  return torch::empty(sizes, torch::TensorOptions().device(torch::kMeta).dtype(dtype));
}

/// The layer's call at B 2, Di 8, L 16, N 4, R 2, K 4 in bf16, on meta tensors.
ops::MambaInnerArgs meta_args() {
  ops::MambaInnerArgs a;
  a.x = meta({2, 16, 16}, torch::kBFloat16).narrow(1, 0, 8);  // a channel slice, L stride 1
  a.z = meta({2, 8, 16}, torch::kBFloat16);
  a.conv_weight = meta({8, 4});
  a.conv_bias = meta({8});
  a.x_proj_weight = meta({2 + 2 * 4, 8});
  a.dt_proj_weight = meta({8, 2});
  a.dt_proj_bias = meta({8});
  a.A = meta({8, 4});
  a.D = meta({8});
  a.compute_dtype = torch::kBFloat16;
  a.needs_grad = true;
  return a;
}

std::string why_not(const ops::MambaInnerArgs& a) {
  return ops::mamba_inner_registry().why_not("cuda", torch::kCUDA, a);
}

TEST(MambaInnerWhyNot, NamesWhatTheKernelsCannotRun) {
  ops::MambaInnerArgs a = meta_args();
  EXPECT_EQ(why_not(a), "");
  a.compute_dtype = torch::kFloat;
  EXPECT_EQ(why_not(a), "x dtype BFloat16 under Float autocast");
  a = meta_args();
  a.x = meta({2, 16, 8}, torch::kBFloat16).transpose(1, 2);  // (B, Di, L) view of (B, L, Di)
  EXPECT_EQ(why_not(a), "x not contiguous along L");
  a = meta_args();
  a.z = meta({2, 8, 16});
  EXPECT_EQ(why_not(a), "z dtype differs from x");
  a.z = meta({2, 8, 15}, torch::kBFloat16);
  EXPECT_EQ(why_not(a), "z shape differs from x");
  a = meta_args();
  a.conv_weight = meta({8, 5});
  EXPECT_EQ(why_not(a), "conv width 5 outside 2..4");
  a = meta_args();
  a.A = meta({8, 65});
  a.x_proj_weight = meta({2 + 2 * 65, 8});
  EXPECT_EQ(why_not(a), "d_state 65 > 64");
  a = meta_args();
  a.x_proj_weight = meta({2 + 2 * 4 + 1, 8});
  EXPECT_EQ(why_not(a), "x_proj_weight not (R+2N, Di)");
  a = meta_args();
  a.D = meta({8}, torch::kBFloat16);
  EXPECT_EQ(why_not(a), "D not fp32");
  a = meta_args();
  a.conv_bias = torch::Tensor();
  EXPECT_EQ(why_not(a), "conv_bias missing");
  a = meta_args();
  a.x = torch::zeros({2, 8, 16});
  EXPECT_EQ(why_not(a), "x on cpu");
}

TEST(MambaInnerWhyNot, TrainOpsNamingItForShapesItCannotRunIsRefusedInOneSentence) {
  RunConfig r;
  r.name = "m";
  r.model.family = "mamba";
  r.model.d_model = 16;
  r.model.d_state = 65;
  r.model.n_block = 1;
  r.train.batch_size = 2;
  r.train.seq_len = 8;
  r.train.device = "cuda";
  r.train.ops.per_op["mamba_inner"] = "cuda";
  try {
    check_ops_choice(r);
    FAIL() << "mamba_inner 'cuda' accepted d_state 65";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("op mamba_inner"));
    EXPECT_THAT(e.message(), HasSubstr("'cuda'"));
    EXPECT_THAT(e.message(), HasSubstr("d_state 65 > 64"));
    EXPECT_EQ(e.message().find(". "), std::string::npos) << e.message();
  }
  r.model.d_state = 16;
  EXPECT_NO_THROW(check_ops_choice(r));
}

// --- on a GPU ------------------------------------------------------------------------------------

struct LayerRun {
  torch::Tensor out;                                         // (B, L, D)
  std::vector<std::pair<std::string, torch::Tensor>> grads;  // every parameter's, and dh's
};

LayerRun run_layer(MambaLayer& layer, const torch::Tensor& h_in, const torch::Tensor& dout,
                   const std::string& ops, bool bf16_autocast) {
  layer->zero_grad();
  auto h = h_in.detach().clone().requires_grad_();
  ops::ScopedOpsChoice choice(ops::OpsChoice{ops, {}});
  ops::clear_used_implementations();
  LayerRun r;
  {
    compat::CudaAutocast autocast(bf16_autocast);
    r.out = layer->forward(h);
  }
  EXPECT_EQ(ops::used_implementations().at("mamba_inner"), ops);
  (r.out.to(torch::kFloat) * dout).sum().backward();
  r.out = r.out.detach();
  r.grads.emplace_back("dh", h.grad());
  for (const auto& p : layer->named_parameters())
    r.grads.emplace_back(p.key(), p.value().grad().clone());
  return r;
}

class MambaInnerLayer : public ::testing::TestWithParam<bool> {};

TEST_P(MambaInnerLayer, LayerThroughTheKernelMatchesTheReference_CUDA) {
  const bool bf16 = GetParam();
  torch::manual_seed(5);
  MambaLayerOptions o(64);
  o.d_state(16).d_conv(4);  // Di 128, R 4
  MambaLayer layer(o);
  layer->to(torch::kCUDA);
  const int64_t B = 3, L = 75;  // L no multiple of the scan's 32-step chunk
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  auto h = torch::randn({B, L, 64}, cuda);
  auto dout = torch::randn({B, L, 64}, cuda);
  LayerRun kernel = run_layer(layer, h, dout, "cuda", bf16);
  LayerRun reference = run_layer(layer, h, dout, "reference", bf16);
  EXPECT_EQ(kernel.out.scalar_type(), reference.out.scalar_type());
  const double out_tol = bf16 ? 2e-2 : 2e-4, grad_tol = bf16 ? 5e-2 : 1e-3;
  expect_close(kernel.out, reference.out, out_tol, "out");
  ASSERT_EQ(kernel.grads.size(), reference.grads.size());
  for (size_t i = 0; i < kernel.grads.size(); ++i) {
    expect_close(kernel.grads[i].second, reference.grads[i].second, grad_tol,
                 "grad " + kernel.grads[i].first);
  }
}

INSTANTIATE_TEST_SUITE_P(Precision, MambaInnerLayer, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("bf16_autocast") : std::string("fp32");
                         });

TEST(MambaInnerKernel, ForwardWithoutGradientsEqualsTheTrainingForward_CUDA) {
  torch::manual_seed(8);
  MambaLayerOptions o(32);
  o.d_state(8).d_conv(3);
  MambaLayer layer(o);
  layer->to(torch::kCUDA);
  auto h = torch::randn({2, 150, 32}, torch::TensorOptions().device(torch::kCUDA));
  ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
  auto trained = layer->forward(h);
  ASSERT_TRUE(trained.requires_grad());
  torch::Tensor evaluated;
  {
    torch::NoGradGuard no_grad;
    evaluated = layer->forward(h);
  }
  // The same kernels and products on the same inputs; the training forward only also stores the
  // scan's carries.
  EXPECT_TRUE(torch::equal(trained.detach(), evaluated));
}

// The layer's x and z are channel-major views of one projection each ((Di, B*L) rows viewed as
// (B, Di, L)). Gradients written in that layout flow back through the view and the permute as
// views; contiguous (B, Di, L) ones cost a (Di, B, L) transposing copy each (5.5 ms of a 131 ms
// Mamba25M step on an H200).
TEST(MambaInnerKernel, OutputAndGradientsOfChannelMajorInputsKeepTheirLayout_CUDA) {
  torch::manual_seed(12);
  const int64_t B = 3, Di = 32, L = 40, N = 8, R = 2, K = 4;
  const auto o = torch::TensorOptions().device(torch::kCUDA);
  auto rows = torch::randn({2 * Di, B * L}, o).requires_grad_();  // (2Di, B*L)
  auto channel_major = [&](int64_t first) {
    return rows.narrow(0, first, Di).view({Di, B, L}).permute({1, 0, 2});  // (B, Di, L)
  };
  ops::MambaInnerArgs a;
  a.x = channel_major(0);
  a.z = channel_major(Di);
  a.conv_weight = torch::randn({Di, K}, o) * 0.5;
  a.conv_bias = torch::randn({Di}, o);
  a.x_proj_weight = torch::randn({R + 2 * N, Di}, o) * 0.2;
  a.dt_proj_weight = torch::randn({Di, R}, o) * 0.5;
  a.dt_proj_bias = torch::randn({Di}, o) * 0.5 - 3.0;
  a.A = -torch::exp(torch::randn({Di, N}, o) * 0.5);
  a.D = torch::randn({Di}, o);
  a.compute_dtype = torch::kFloat;
  a.needs_grad = true;
  torch::Tensor dx, dz;
  a.x.register_hook([&](const torch::Tensor& g) { dx = g; });
  a.z.register_hook([&](const torch::Tensor& g) { dz = g; });
  ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
  auto y = ops::mamba_inner(a);
  // y in z's layout too: the output projection multiplies its (Di, B*L) rows as they are.
  EXPECT_EQ(y.strides(), a.z.strides());
  (y * torch::randn_like(y)).sum().backward();
  ASSERT_TRUE(dx.defined());
  ASSERT_TRUE(dz.defined());
  EXPECT_EQ(dx.strides(), a.x.strides());
  EXPECT_EQ(dz.strides(), a.z.strides());
  EXPECT_GT(dx.abs().sum().item<double>(), 0.0);
  EXPECT_GT(dz.abs().sum().item<double>(), 0.0);
}

TEST(MambaInnerKernel, AutoPicksTheKernelOnCuda_CUDA) {
  torch::manual_seed(9);
  MambaLayer layer(MambaLayerOptions(32));
  layer->to(torch::kCUDA);
  ops::ScopedOpsChoice choice(ops::OpsChoice{});
  ops::clear_used_implementations();
  layer->forward(torch::randn({1, 7, 32}, torch::TensorOptions().device(torch::kCUDA)));
  const auto used = ops::used_implementations();
  EXPECT_EQ(used.at("mamba_inner"), "cuda");
  // The kernel calls no other op.
  EXPECT_EQ(used.count("selective_scan"), 0u);
  EXPECT_EQ(used.count("causal_conv1d"), 0u);
}

}  // namespace
}  // namespace mmlab
