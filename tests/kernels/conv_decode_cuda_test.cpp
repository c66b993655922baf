// SPDX-License-Identifier: GPL-3.0-or-later
// The CUDA causal conv1d (forward and gradients), its decode step and the selective-state decode
// step against their reference twins; the decode steps run over several steps must equal the
// matching slice of the full-sequence ops (conv over L, the reference scan). bf16 kernels are
// compared with the reference run in fp32 on the same (bf16-exact) values, with a tolerance of a
// few bf16 roundings. Also why_not's answers, on meta tensors (no GPU needed).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/ops/mamba_ops.h"

namespace mmlab {
namespace {

struct Tolerance {
  double rtol, atol;
};

Tolerance tolerance(torch::Dtype dtype) {
  return dtype == torch::kBFloat16 ? Tolerance{1.6e-2, 1.6e-2} : Tolerance{2e-5, 2e-5};
}

/// Fails with the worst element's excess over atol + rtol * |expected|.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, Tolerance tol,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << " is undefined";
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  auto a = actual.to(torch::kFloat), e = expected.to(torch::kFloat);
  auto excess = (a - e).abs() - (tol.atol + tol.rtol * e.abs());
  const float worst = excess.max().item<float>();
  EXPECT_LE(worst, 0.f) << what << ": max |diff| " << (a - e).abs().max().item<float>()
                        << " beyond tolerance (rtol " << tol.rtol << ", atol " << tol.atol << ")";
}

/// Random values that `dtype` holds exactly, as fp32 on the GPU.
torch::Tensor randn_exact(torch::IntArrayRef sizes, torch::Dtype dtype, double scale = 1.0) {
  auto o = torch::TensorOptions().device(torch::kCUDA);
  return (torch::randn(sizes, o) * scale).to(dtype).to(torch::kFloat);
}

std::string dtype_name(torch::Dtype d) {
  return d == torch::kBFloat16 ? "bf16" : "fp32";
}

// ---------------------------------------------------------------------------------------------
// causal_conv1d forward + backward

struct ConvCase {
  int64_t K;
  bool bias, silu;
  torch::Dtype x_dtype;
  bool weight_in_x_dtype;  // else fp32 weight and bias
  int64_t L;
  bool strided;  // x is the second channel half of a (B, 2Di, L) tensor
};

std::string conv_case_name(const ::testing::TestParamInfo<ConvCase>& info) {
  const ConvCase& c = info.param;
  return "K" + std::to_string(c.K) + (c.bias ? "_bias" : "") + (c.silu ? "_silu" : "") + "_" +
         dtype_name(c.x_dtype) + (c.weight_in_x_dtype ? "_wx" : "") + "_L" + std::to_string(c.L) +
         (c.strided ? "_strided" : "");
}

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> out;
  for (int64_t K : {2, 3, 4})
    for (bool bias : {false, true})
      for (bool silu : {false, true})
        for (auto dtype : {torch::kFloat, torch::kBFloat16})
          for (bool wx : {false, true}) {
            if (wx && dtype == torch::kFloat) continue;  // same as fp32 weights
            // The kernels walk a row in chunks of 256 steps, 8 per lane, with 16-byte vectors
            // where the row is aligned (in bf16 when L is a multiple of 8): 264 and 512 carry
            // the halo across chunks on vectors, 300 and 1100 across partial and scalar lanes.
            for (int64_t L : {1, 5, 264, 300, 512, 1100})
              for (bool strided : {false, true})
                out.push_back({K, bias, silu, dtype, wx, L, strided});
          }
  return out;
}

class CausalConv1dKernel : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CausalConv1dKernel, OutputAndGradientsMatchReference_CUDA) {
  const ConvCase c = GetParam();
  const int64_t B = 2, Di = 24;
  torch::manual_seed(1234);
  const auto w_dtype = c.weight_in_x_dtype ? c.x_dtype : torch::kFloat;
  auto x_full = randn_exact({B, c.strided ? 2 * Di : Di, c.L}, c.x_dtype);  // (B, 2Di|Di, L)
  auto weight = randn_exact({Di, c.K}, w_dtype, 0.5);                       // (Di, K)
  auto bias = randn_exact({Di}, w_dtype);                                   // (Di)
  auto dy = randn_exact({B, Di, c.L}, c.x_dtype);                           // (B, Di, L)

  // The kernel, on tensors of the case's dtypes.
  auto xk_full = x_full.detach().to(c.x_dtype).requires_grad_();
  auto wk = weight.detach().to(w_dtype).requires_grad_();
  auto bk = bias.detach().to(w_dtype).requires_grad_();
  ops::CausalConv1dArgs ka;
  ka.x = c.strided ? xk_full.narrow(1, Di, Di) : xk_full;
  ka.weight = wk;
  if (c.bias) ka.bias = bk;
  ka.silu = c.silu;
  torch::Tensor yk;
  {
    ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
    yk = ops::causal_conv1d(ka);
  }
  EXPECT_EQ(ops::used_implementations()["causal_conv1d"], "cuda");
  EXPECT_EQ(yk.scalar_type(), c.x_dtype);
  EXPECT_TRUE(yk.is_contiguous());
  (yk.to(torch::kFloat) * dy).sum().backward();

  // The reference in fp32 on the same values.
  auto xr_full = x_full.detach().clone().requires_grad_();
  auto wr = weight.detach().clone().requires_grad_();
  auto br = bias.detach().clone().requires_grad_();
  ops::CausalConv1dArgs ra;
  ra.x = c.strided ? xr_full.narrow(1, Di, Di) : xr_full;
  ra.weight = wr;
  if (c.bias) ra.bias = br;
  ra.silu = c.silu;
  auto yr = ops::causal_conv1d_reference(ra);
  (yr * dy).sum().backward();

  const Tolerance tol = tolerance(c.x_dtype);
  expect_close(yk, yr, tol, "y");
  expect_close(xk_full.grad(), xr_full.grad(), tol, "dx");
  // dweight and dbias are fp32 sums over B*L terms, rounded once to the weight's dtype.
  const Tolerance wtol =
      w_dtype == torch::kBFloat16 ? tolerance(torch::kBFloat16) : Tolerance{1e-4, 1e-4};
  expect_close(wk.grad(), wr.grad(), wtol, "dweight");
  EXPECT_EQ(wk.grad().scalar_type(), w_dtype);
  if (c.bias) {
    expect_close(bk.grad(), br.grad(), wtol, "dbias");
  } else {
    EXPECT_FALSE(bk.grad().defined());
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CausalConv1dKernel, ::testing::ValuesIn(conv_cases()),
                         conv_case_name);

TEST(CausalConv1dKernelAuto, AutoPicksTheKernelOnCuda_CUDA) {
  ops::CausalConv1dArgs a;
  a.x = torch::randn({1, 4, 9}, torch::TensorOptions().device(torch::kCUDA));
  a.weight = torch::randn({4, 4}, torch::TensorOptions().device(torch::kCUDA));
  ops::ScopedOpsChoice choice(ops::OpsChoice{});
  auto y = ops::causal_conv1d(a);
  EXPECT_EQ(ops::used_implementations()["causal_conv1d"], "cuda");
  expect_close(y, ops::causal_conv1d_reference(a), tolerance(torch::kFloat), "y");
}

// ---------------------------------------------------------------------------------------------
// causal_conv1d_update: steps == the full conv's columns, and == the reference step

struct ConvUpdateCase {
  int64_t K;
  bool bias, silu;
  torch::Dtype dtype;  // x and conv_state
  bool strided_state;  // conv_state is the second half of a (B, 2Di, K) tensor
};

std::string conv_update_name(const ::testing::TestParamInfo<ConvUpdateCase>& info) {
  const ConvUpdateCase& c = info.param;
  return "K" + std::to_string(c.K) + (c.bias ? "_bias" : "") + (c.silu ? "_silu" : "") + "_" +
         dtype_name(c.dtype) + (c.strided_state ? "_strided" : "");
}

std::vector<ConvUpdateCase> conv_update_cases() {
  std::vector<ConvUpdateCase> out;
  for (int64_t K : {2, 3, 4})
    for (bool bias : {false, true})
      for (bool silu : {false, true})
        for (auto dtype : {torch::kFloat, torch::kBFloat16})
          for (bool strided : {false, true}) out.push_back({K, bias, silu, dtype, strided});
  return out;
}

class CausalConv1dUpdateKernel : public ::testing::TestWithParam<ConvUpdateCase> {};

TEST_P(CausalConv1dUpdateKernel, StepsEqualFullConvAndReferenceStep_CUDA) {
  const ConvUpdateCase c = GetParam();
  const int64_t B = 3, Di = 20, L = 7;
  torch::NoGradGuard no_grad;
  torch::manual_seed(99);
  auto x = randn_exact({B, Di, L}, c.dtype);  // (B, Di, L)
  auto weight = randn_exact({Di, c.K}, torch::kFloat, 0.5);
  auto bias = randn_exact({Di}, torch::kFloat);

  ops::CausalConv1dArgs full;
  full.x = x;
  full.weight = weight;
  if (c.bias) full.bias = bias;
  full.silu = c.silu;
  auto y_full = ops::causal_conv1d_reference(full);  // (B, Di, L) fp32

  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(c.dtype);
  auto state_k_full = torch::zeros({B, c.strided_state ? 2 * Di : Di, c.K}, opts);
  auto state_k = c.strided_state ? state_k_full.narrow(1, Di, Di) : state_k_full;  // (B, Di, K)
  auto state_r = torch::zeros({B, Di, c.K}, opts);
  const Tolerance tol = tolerance(c.dtype);
  for (int64_t t = 0; t < L; ++t) {
    ops::CausalConv1dUpdateArgs step;
    step.x = x.select(2, t).to(c.dtype);  // (B, Di)
    step.weight = weight;
    if (c.bias) step.bias = bias;
    step.silu = c.silu;
    step.conv_state = state_k;
    torch::Tensor yk;
    {
      ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
      yk = ops::causal_conv1d_update(step);
    }
    EXPECT_EQ(ops::used_implementations()["causal_conv1d_update"], "cuda");
    EXPECT_EQ(yk.scalar_type(), c.dtype);
    step.conv_state = state_r;
    auto yr = ops::causal_conv1d_update_reference(step);
    const std::string at = " at step " + std::to_string(t);
    expect_close(yk, y_full.select(2, t), tol, "y vs full conv" + at);
    expect_close(yk, yr, tol, "y vs reference step" + at);
    expect_close(state_k, state_r, Tolerance{0, 0}, "conv_state" + at);
  }
  if (c.strided_state) {
    EXPECT_EQ(state_k_full.narrow(1, 0, Di).abs().max().item<float>(), 0.f)
        << "the step wrote outside its channel slice";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CausalConv1dUpdateKernel, ::testing::ValuesIn(conv_update_cases()),
                         conv_update_name);

// ---------------------------------------------------------------------------------------------
// selective_state_update: steps == the reference scan's columns and last state, and == the
// reference step

struct StateUpdateCase {
  int64_t N;
  bool with_D, with_z, with_dt_bias, dt_softplus;
  torch::Dtype dtype;  // x, dt, B, C, z
};

std::string state_update_name(const ::testing::TestParamInfo<StateUpdateCase>& info) {
  const StateUpdateCase& c = info.param;
  return "N" + std::to_string(c.N) + (c.with_D ? "_D" : "") + (c.with_z ? "_z" : "") +
         (c.with_dt_bias ? "_dtbias" : "") + (c.dt_softplus ? "_softplus" : "") + "_" +
         dtype_name(c.dtype);
}

std::vector<StateUpdateCase> state_update_cases() {
  std::vector<StateUpdateCase> out;
  for (int64_t N : {1, 5, 16, 64})
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      out.push_back({N, true, true, true, true, dtype});
      out.push_back({N, false, false, false, false, dtype});
      out.push_back({N, true, false, true, false, dtype});
      out.push_back({N, false, true, false, true, dtype});
    }
  return out;
}

class SelectiveStateUpdateKernel : public ::testing::TestWithParam<StateUpdateCase> {};

TEST_P(SelectiveStateUpdateKernel, StepsEqualReferenceScanAndStep_CUDA) {
  const StateUpdateCase c = GetParam();
  const int64_t B = 2, Di = 36, L = 6, N = c.N;
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  auto f32 = torch::TensorOptions().device(torch::kCUDA);
  auto u = randn_exact({B, Di, L}, c.dtype);  // (B, Di, L)
  // Before softplus when dt_softplus; else already positive step sizes. One entry above the
  // softplus threshold (20) exercises its linear branch.
  auto delta = c.dt_softplus ? randn_exact({B, Di, L}, c.dtype) - 1.0
                             : torch::rand({B, Di, L}, f32).mul(0.5).add(0.01);
  delta = delta.to(c.dtype).to(torch::kFloat);  // exact in the steps' dtype too
  if (c.dt_softplus) delta.index_put_({0, 0, 0}, 20.5);
  auto A = -torch::exp(torch::randn({Di, N}, f32) * 0.5);  // (Di, N) fp32
  auto Bm = randn_exact({B, N, L}, c.dtype);               // (B, N, L)
  auto Cm = randn_exact({B, N, L}, c.dtype);               // (B, N, L)
  auto D = torch::randn({Di}, f32);
  auto z = randn_exact({B, Di, L}, c.dtype);
  auto dt_bias = torch::randn({Di}, f32) * 0.3;

  ops::SelectiveScanArgs scan;
  scan.u = u;
  scan.delta = delta;
  scan.A = A;
  scan.B = Bm;
  scan.C = Cm;
  if (c.with_D) scan.D = D;
  if (c.with_z) scan.z = z;
  if (c.with_dt_bias) scan.delta_bias = dt_bias;
  scan.delta_softplus = c.dt_softplus;
  scan.return_last_state = true;
  auto full = ops::selective_scan_reference(scan);  // y (B, Di, L), last_state (B, Di, N)

  auto state_k = torch::zeros({B, Di, N}, f32);
  auto state_r = torch::zeros({B, Di, N}, f32);
  const Tolerance tol = tolerance(c.dtype);
  const Tolerance state_tol{2e-5, 2e-5};  // fp32 in both
  for (int64_t t = 0; t < L; ++t) {
    ops::SelectiveStateUpdateArgs step;
    step.x = u.select(2, t).to(c.dtype);  // (B, Di), channel stride L
    step.dt = delta.select(2, t).to(c.dtype);
    step.A = A;
    step.B = Bm.select(2, t).to(c.dtype);  // (B, N)
    step.C = Cm.select(2, t).to(c.dtype);
    if (c.with_D) step.D = D;
    if (c.with_z) step.z = z.select(2, t).to(c.dtype);
    if (c.with_dt_bias) step.dt_bias = dt_bias;
    step.dt_softplus = c.dt_softplus;
    step.state = state_k;
    torch::Tensor yk;
    {
      ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
      yk = ops::selective_state_update(step);
    }
    EXPECT_EQ(ops::used_implementations()["selective_state_update"], "cuda");
    EXPECT_EQ(yk.scalar_type(), c.dtype);
    step.state = state_r;
    auto yr = ops::selective_state_update_reference(step);
    const std::string at = " at step " + std::to_string(t);
    expect_close(yk, full.y.select(2, t), tol, "y vs reference scan" + at);
    expect_close(yk, yr, tol, "y vs reference step" + at);
    expect_close(state_k, state_r, state_tol, "state vs reference step" + at);
  }
  expect_close(state_k, full.last_state, state_tol, "state vs the scan's last state");
}

INSTANTIATE_TEST_SUITE_P(Cases, SelectiveStateUpdateKernel,
                         ::testing::ValuesIn(state_update_cases()), state_update_name);

// ---------------------------------------------------------------------------------------------
// why_not: sizes, strides, dtypes and needs_grad only (meta tensors, no GPU needed)

torch::Tensor meta(torch::IntArrayRef sizes, torch::Dtype dtype = torch::kFloat) {
  return torch::empty(sizes, torch::TensorOptions().device(torch::kMeta).dtype(dtype));
}

std::string conv_why_not(const ops::CausalConv1dArgs& a) {
  return ops::causal_conv1d_registry().why_not("cuda", torch::kCUDA, a);
}

TEST(ConvDecodeWhyNot, CausalConv1dNamesWhatItCannotRun) {
  ops::CausalConv1dArgs a;
  a.x = meta({2, 8, 16});
  a.weight = meta({8, 4});
  a.bias = meta({8});
  EXPECT_EQ(conv_why_not(a), "");
  a.x = meta({2, 16, 16}).narrow(1, 8, 8);  // channel slice: L stride still 1
  EXPECT_EQ(conv_why_not(a), "");
  a.x = meta({2, 16, 8}).transpose(1, 2);  // (B, Di, L) view of (B, L, Di)
  EXPECT_EQ(conv_why_not(a), "x not contiguous along L");
  a.x = meta({2, 8, 16}, torch::kHalf);
  EXPECT_EQ(conv_why_not(a), "x dtype Half");
  a.x = meta({2, 8, 16}, torch::kBFloat16);
  EXPECT_EQ(conv_why_not(a), "");
  a.weight = meta({8, 5});
  EXPECT_EQ(conv_why_not(a), "conv width 5 outside 2..4");
  a.weight = meta({8, 1});
  EXPECT_EQ(conv_why_not(a), "conv width 1 outside 2..4");
  a.weight = meta({8, 3}, torch::kDouble);
  EXPECT_EQ(conv_why_not(a), "weight dtype Double");
  a.weight = torch::empty({8, 3});  // a CPU tensor in a CUDA call
  EXPECT_EQ(conv_why_not(a), "weight on cpu");
  a.weight = meta({8, 3});
  EXPECT_NE(ops::causal_conv1d_registry().why_not("cuda", torch::kCPU, a), "");
}

TEST(ConvDecodeWhyNot, CausalConv1dUpdateRefusesGradients) {
  ops::CausalConv1dUpdateArgs a;
  a.conv_state = meta({2, 8, 4});
  a.x = meta({2, 8});
  a.weight = meta({8, 4});
  EXPECT_EQ(ops::causal_conv1d_update_registry().why_not("cuda", torch::kCUDA, a), "");
  a.needs_grad = true;
  EXPECT_EQ(ops::causal_conv1d_update_registry().why_not("cuda", torch::kCUDA, a),
            "no backward (needs_grad)");
}

TEST(ConvDecodeWhyNot, SelectiveStateUpdateNamesWhatItCannotRun) {
  ops::SelectiveStateUpdateArgs a;
  a.state = meta({2, 8, 64});
  a.x = meta({2, 8}, torch::kBFloat16);
  a.dt = meta({2, 8});
  a.A = meta({8, 64});
  a.B = meta({2, 64}, torch::kBFloat16);
  a.C = meta({2, 64}, torch::kBFloat16);
  auto why = [&] {
    return ops::selective_state_update_registry().why_not("cuda", torch::kCUDA, a);
  };
  EXPECT_EQ(why(), "");
  a.needs_grad = true;
  EXPECT_EQ(why(), "no backward (needs_grad)");
  a.needs_grad = false;
  a.state = meta({2, 8, 65});
  a.A = meta({8, 65});
  a.B = meta({2, 65});
  a.C = meta({2, 65});
  EXPECT_EQ(why(), "d_state 65 > 64");
  a.state = meta({2, 8, 16}, torch::kBFloat16);
  EXPECT_EQ(why(), "state dtype BFloat16, not Float");
  a.state = meta({2, 8, 16});
  a.z = meta({2, 8}, torch::kHalf);
  EXPECT_EQ(why(), "z dtype Half");
}

}  // namespace
}  // namespace mmlab
