// SPDX-License-Identifier: GPL-3.0-or-later
// The CUDA selective scan against its reference twin: y, last_state and the gradients of every
// input, over shapes that cross the kernel's tile and chunk boundaries (L = 1, L not a multiple
// of the chunk, L = 4096), every states-per-thread variant (N = 1, 5, 16, 33, 64), Di not a
// multiple of the 32-channel block, bf16 and fp32, z/D/delta_bias on and off, and u/z as channel
// slices of one (B, 2Di, L) tensor. Both run on the same tensors (bf16 ones are upcast inside),
// so the differences left are summation order and the roundings to bf16 of outputs. Also
// why_not's answers on meta tensors (no GPU needed).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/ops/mamba_ops.h"

namespace mmlab {
namespace {

struct ScanCase {
  std::string name;
  int64_t B, Di, L, N;
  torch::Dtype dtype;     // u, delta, z
  torch::Dtype bc_dtype;  // B, C
  bool z, D, bias, softplus, last_state, strided;
};

std::vector<ScanCase> scan_cases() {
  const auto f32 = torch::kFloat, bf16 = torch::kBFloat16;
  // name                       B   Di    L   N  dtype bc    z      D      bias   splus  last
  // strided
  return {
      {"small_fp32_all", 2, 40, 37, 16, f32, f32, true, true, true, true, true, false},
      {"small_bf16_all", 2, 64, 100, 16, bf16, bf16, true, true, true, true, true, false},
      {"small_fp32_plain_L1", 3, 7, 1, 5, f32, f32, false, false, false, false, true, false},
      {"small_bf16_fp32bc_N8", 2, 48, 300, 8, bf16, f32, true, false, true, true, false, false},
      {"small_fp32_N64_L257", 1, 33, 257, 64, f32, f32, true, true, false, true, true, false},
      {"small_bf16_N33_strided", 2, 32, 70, 33, bf16, bf16, true, true, true, true, true, true},
      {"small_fp32_N1_nobias", 2, 64, 65, 1, f32, f32, false, true, false, true, false, true},
      {"small_fp32_bias_no_softplus", 1, 32, 129, 16, f32, f32, true, true, true, false, true,
       false},
      {"long_fp32_L4096_N64", 1, 32, 4096, 64, f32, f32, true, true, true, true, true, false},
      {"long_bf16_L4096_N16", 1, 64, 4096, 16, bf16, bf16, true, true, true, true, true, true},
  };
}

/// Leaf tensors of one case, on the GPU in their storage dtypes; u and z may be views of xz.
struct ScanInputs {
  torch::Tensor xz, u, delta, A, B, C, D, z, delta_bias;
};

ScanInputs make_inputs(const ScanCase& c) {
  torch::manual_seed(7);
  const auto o = torch::TensorOptions().device(torch::kCUDA);
  ScanInputs in;
  if (c.strided) {
    in.xz = torch::randn({c.B, 2 * c.Di, c.L}, o).to(c.dtype);  // (B, 2Di, L)
  } else {
    in.u = torch::randn({c.B, c.Di, c.L}, o).to(c.dtype);  // (B, Di, L)
    if (c.z) in.z = torch::randn({c.B, c.Di, c.L}, o).to(c.dtype);
  }
  // delta' around 0.1..0.5: the state remembers a few to some tens of steps.
  if (c.softplus) {
    in.delta = (torch::randn({c.B, c.Di, c.L}, o) * 0.5 - 1.0).to(c.dtype);
    if (c.bias) in.delta_bias = torch::randn({c.Di}, o) * 0.3 - 0.5;
  } else {
    in.delta = (torch::rand({c.B, c.Di, c.L}, o) * 0.3 + 0.02).to(c.dtype);
    if (c.bias) in.delta_bias = torch::rand({c.Di}, o) * 0.1;
  }
  in.A = -torch::exp(torch::randn({c.Di, c.N}, o) * 0.5);  // (Di, N)
  in.B = torch::randn({c.B, c.N, c.L}, o).to(c.bc_dtype);  // (B, N, L)
  in.C = torch::randn({c.B, c.N, c.L}, o).to(c.bc_dtype);  // (B, N, L)
  if (c.D) in.D = torch::randn({c.Di}, o);
  return in;
}

struct ScanRun {
  torch::Tensor y, last_state;
  std::vector<std::string> names;
  std::vector<torch::Tensor> grads;  // d(sum(y * dy)) / d(each input named in names)
};

ScanRun run_scan(const char* impl, const ScanCase& c, const ScanInputs& in,
                 const torch::Tensor& dy) {
  auto leaf = [](const torch::Tensor& t) {
    return t.defined() ? t.detach().clone().requires_grad_() : t;
  };
  ops::SelectiveScanArgs a;
  torch::Tensor xz = leaf(in.xz);
  a.u = c.strided ? xz.narrow(1, 0, c.Di) : leaf(in.u);
  a.z = c.strided ? (c.z ? xz.narrow(1, c.Di, c.Di) : torch::Tensor()) : leaf(in.z);
  a.delta = leaf(in.delta);
  a.A = leaf(in.A);
  a.B = leaf(in.B);
  a.C = leaf(in.C);
  a.D = leaf(in.D);
  a.delta_bias = leaf(in.delta_bias);
  a.delta_softplus = c.softplus;
  a.return_last_state = c.last_state;
  ScanRun r;
  std::vector<torch::Tensor> inputs;
  for (const auto& [name, t] :
       std::vector<std::pair<std::string, torch::Tensor>>{{"du", a.u},
                                                          {"ddelta", a.delta},
                                                          {"dA", a.A},
                                                          {"dB", a.B},
                                                          {"dC", a.C},
                                                          {"dD", a.D},
                                                          {"dz", a.z},
                                                          {"ddelta_bias", a.delta_bias}}) {
    if (!t.defined()) continue;
    r.names.push_back(name);
    inputs.push_back(t);
  }
  ops::ScopedOpsChoice choice(ops::OpsChoice{impl, {}});
  ops::SelectiveScanResult out = ops::selective_scan(a);
  r.y = out.y.detach();
  r.last_state = out.last_state;
  r.grads = torch::autograd::grad({out.y}, inputs, {dy});
  return r;
}

/// max |got - want| <= tol * max |want|; tol by the compared tensor's dtype: bf16 outputs differ
/// by up to one rounding (2^-8 relative), fp32 ones by summation order only.
void expect_close(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << what;
  const double tol = want.scalar_type() == torch::kBFloat16 ? 2e-2 : 1e-4;
  auto g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  ASSERT_TRUE(torch::isfinite(g).all().item<bool>()) << what << " has NaN or Inf";
  const double scale = std::max(w.abs().max().item<double>(), 1e-30);
  const double diff = (g - w).abs().max().item<double>();
  EXPECT_LE(diff, tol * scale) << what << ": max |diff| " << diff << " at scale " << scale;
}

class SelectiveScanKernel : public ::testing::TestWithParam<ScanCase> {};

TEST_P(SelectiveScanKernel, OutputsAndGradientsMatchReference_CUDA) {
  const ScanCase& c = GetParam();
  const ScanInputs in = make_inputs(c);
  auto dy = torch::randn({c.B, c.Di, c.L}, torch::TensorOptions().device(torch::kCUDA))
                .to(c.dtype);  // (B, Di, L)
  const ScanRun want = run_scan("reference", c, in, dy);
  const ScanRun got = run_scan("cuda", c, in, dy);
  EXPECT_EQ(ops::used_implementations()["selective_scan"], "cuda");

  EXPECT_TRUE(got.y.is_contiguous());
  expect_close(got.y, want.y, "y");
  if (c.last_state) {
    expect_close(got.last_state, want.last_state, "last_state");
  } else {
    EXPECT_FALSE(got.last_state.defined());
  }
  ASSERT_EQ(got.names, want.names);
  for (size_t i = 0; i < got.grads.size(); ++i)
    expect_close(got.grads[i], want.grads[i], got.names[i]);

  // Without autograd the kernel keeps no carry states but computes the same y and last state.
  torch::NoGradGuard no_grad;
  ops::SelectiveScanArgs a;
  a.u = c.strided ? in.xz.narrow(1, 0, c.Di) : in.u;
  a.z = c.strided ? (c.z ? in.xz.narrow(1, c.Di, c.Di) : torch::Tensor()) : in.z;
  a.delta = in.delta;
  a.A = in.A;
  a.B = in.B;
  a.C = in.C;
  a.D = in.D;
  a.delta_bias = in.delta_bias;
  a.delta_softplus = c.softplus;
  a.return_last_state = c.last_state;
  ops::ScopedOpsChoice choice(ops::OpsChoice{"cuda", {}});
  ops::SelectiveScanResult plain = ops::selective_scan(a);
  expect_close(plain.y, want.y, "y without grad");
  if (c.last_state) expect_close(plain.last_state, want.last_state, "last_state without grad");
}

INSTANTIATE_TEST_SUITE_P(Cases, SelectiveScanKernel, ::testing::ValuesIn(scan_cases()),
                         [](const ::testing::TestParamInfo<ScanCase>& info) {
                           return info.param.name;
                         });

torch::Tensor meta(torch::IntArrayRef sizes, torch::Dtype dtype = torch::kFloat) {
  return torch::empty(sizes, torch::TensorOptions().device(torch::kMeta).dtype(dtype));
}

TEST(SelectiveScanKernelWhyNot, NamesWhatItCannotRun) {
  ops::SelectiveScanArgs a;
  a.u = meta({2, 8, 16}, torch::kBFloat16);
  a.delta = meta({2, 8, 16}, torch::kBFloat16);
  a.z = meta({2, 8, 16}, torch::kBFloat16);
  a.A = meta({8, 64});
  a.B = meta({2, 64, 16}, torch::kBFloat16);
  a.C = meta({2, 64, 16}, torch::kBFloat16);
  a.D = meta({8});
  a.delta_bias = meta({8});
  a.needs_grad = true;
  auto why = [&] { return ops::selective_scan_registry().why_not("cuda", torch::kCUDA, a); };
  EXPECT_EQ(why(), "");
  a.u = meta({2, 16, 16}, torch::kBFloat16).narrow(1, 8, 8);  // channel slice: L stride 1
  EXPECT_EQ(why(), "");
  a.u = meta({2, 16, 8}, torch::kBFloat16).transpose(1, 2);  // (B, Di, L) view of (B, L, Di)
  EXPECT_EQ(why(), "u not contiguous along L");
  a.u = meta({2, 8, 16}, torch::kHalf);
  EXPECT_EQ(why(), "dtype Half");
  a.u = meta({2, 8, 16});
  EXPECT_EQ(why(), "delta dtype differs from u");
  a.u = meta({2, 8, 16}, torch::kBFloat16);
  a.A = meta({8, 65});
  a.B = meta({2, 65, 16}, torch::kBFloat16);
  a.C = meta({2, 65, 16}, torch::kBFloat16);
  EXPECT_EQ(why(), "d_state 65 > 64");
  a.A = meta({8, 64}, torch::kBFloat16);
  a.B = meta({2, 64, 16}, torch::kBFloat16);
  a.C = meta({2, 64, 16}, torch::kBFloat16);
  EXPECT_EQ(why(), "A not fp32");
  a.A = meta({8, 64});
  a.D = meta({8}, torch::kBFloat16);
  EXPECT_EQ(why(), "D not fp32");
  a.D = meta({8});
  a.delta_bias = meta({8}, torch::kDouble);
  EXPECT_EQ(why(), "delta_bias not fp32");
  a.delta_bias = meta({8});
  a.C = meta({2, 64, 16});
  EXPECT_EQ(why(), "B and C dtypes differ");
  a.C = meta({2, 64, 16}, torch::kBFloat16);
  a.delta = torch::empty({2, 8, 16}, torch::kBFloat16);  // a CPU tensor among meta ones
  EXPECT_EQ(why(), "delta not on u's device");
  a.u = torch::empty({2, 8, 16}, torch::kBFloat16);
  EXPECT_EQ(why(), "u on cpu");
  EXPECT_NE(ops::selective_scan_registry().why_not("cuda", torch::kCPU, a), "");
}

}  // namespace
}  // namespace mmlab
