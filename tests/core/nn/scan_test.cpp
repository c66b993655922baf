// SPDX-License-Identifier: GPL-3.0-or-later
// The selective-scan references agree: sequential == chunked (forward and gradients), over shapes
// and chunk sizes, and a scan split in two halves chained by its state equals the whole scan.
#include <gtest/gtest.h>

#include "core/ops/selective_scan.h"

namespace mmlab {
namespace {

struct ScanShape {
  int64_t B, L, Di, N, chunk;
};

struct ScanInputs {
  torch::Tensor u, delta, A, Bm, Cm, D;
  std::vector<torch::Tensor> all() const { return {u, delta, A, Bm, Cm, D}; }
};

ScanInputs make_inputs(const ScanShape& s, torch::Dtype dtype, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(dtype);
  ScanInputs in;
  in.u = torch::randn({s.B, s.L, s.Di}, o).requires_grad_();
  in.delta = torch::softplus(torch::randn({s.B, s.L, s.Di}, o) - 1).detach().requires_grad_();
  in.A = (-torch::exp(torch::randn({s.Di, s.N}, o))).detach().requires_grad_();
  in.Bm = torch::randn({s.B, s.L, s.N}, o).requires_grad_();
  in.Cm = torch::randn({s.B, s.L, s.N}, o).requires_grad_();
  in.D = torch::randn({s.Di}, o).requires_grad_();
  return in;
}

class ScanAgreement : public ::testing::TestWithParam<ScanShape> {};

TEST_P(ScanAgreement, ChunkedEqualsSequentialForwardAndGradients) {
  const ScanShape s = GetParam();
  ScanInputs a = make_inputs(s, torch::kFloat, 7);
  ScanInputs b = make_inputs(s, torch::kFloat, 7);
  auto ra = selective_scan_sequential(a.u, a.delta, a.A, a.Bm, a.Cm, a.D);
  auto rb = selective_scan_chunked(b.u, b.delta, b.A, b.Bm, b.Cm, b.D, {}, s.chunk);
  // 1e-5 relative to the output's magnitude (fp32 sums of up to L terms).
  const float y_scale = std::max(1.0f, ra.y.abs().max().item<float>());
  const float h_scale = std::max(1.0f, ra.h_last.abs().max().item<float>());
  EXPECT_LT((ra.y - rb.y).abs().max().item<float>(), 1e-5 * y_scale);
  EXPECT_LT((ra.h_last - rb.h_last).abs().max().item<float>(), 1e-5 * h_scale);

  auto w = torch::randn_like(ra.y);
  (ra.y * w).sum().backward();
  (rb.y * w).sum().backward();
  auto ga = a.all(), gb = b.all();
  const char* names[] = {"u", "delta", "A", "B", "C", "D"};
  for (size_t i = 0; i < ga.size(); ++i) {
    auto diff = (ga[i].grad() - gb[i].grad()).abs().max().item<float>();
    auto scale = ga[i].grad().abs().max().item<float>();
    EXPECT_LT(diff, 1e-5 * std::max(1.0f, scale)) << "gradient of " << names[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ScanAgreement,
                         ::testing::Values(ScanShape{1, 1, 3, 2, 4}, ScanShape{2, 17, 8, 4, 4},
                                           ScanShape{2, 32, 16, 16, 16}, ScanShape{3, 50, 5, 3, 7},
                                           ScanShape{1, 64, 32, 16, 64}));

TEST(Scan, SequentialMatchesHandComputedRecurrence) {
  // One channel, one state: h1 = dt*b*u1; h2 = exp(dt*a)*h1 + dt*b*u2; y = c*h + d*u.
  auto u = torch::tensor({1.0, 2.0}, torch::kDouble).view({1, 2, 1});
  auto dt = torch::tensor({0.5, 0.25}, torch::kDouble).view({1, 2, 1});
  auto A = torch::tensor({-2.0}, torch::kDouble).view({1, 1});
  auto B = torch::tensor({3.0, 4.0}, torch::kDouble).view({1, 2, 1});
  auto C = torch::tensor({5.0, 6.0}, torch::kDouble).view({1, 2, 1});
  auto D = torch::tensor({0.1}, torch::kDouble);
  auto r = selective_scan_sequential(u, dt, A, B, C, D);
  const double h1 = 0.5 * 3.0 * 1.0;
  const double h2 = std::exp(0.25 * -2.0) * h1 + 0.25 * 4.0 * 2.0;
  EXPECT_NEAR(r.y[0][0][0].item<double>(), 5.0 * h1 + 0.1 * 1.0, 1e-5);
  EXPECT_NEAR(r.y[0][1][0].item<double>(), 6.0 * h2 + 0.1 * 2.0, 1e-5);
  EXPECT_NEAR(r.h_last[0][0][0].item<double>(), h2, 1e-5);
}

TEST(Scan, ChainingByStateEqualsWholeScan) {
  ScanShape s{2, 20, 6, 4, 8};
  ScanInputs in = make_inputs(s, torch::kFloat, 3);
  torch::NoGradGuard no_grad;
  auto whole = selective_scan_chunked(in.u, in.delta, in.A, in.Bm, in.Cm, in.D);
  auto first = [&](const torch::Tensor& t) { return t.narrow(1, 0, 9); };
  auto second = [&](const torch::Tensor& t) { return t.narrow(1, 9, 11); };
  auto r1 = selective_scan_sequential(first(in.u), first(in.delta), in.A, first(in.Bm),
                                      first(in.Cm), in.D);
  auto r2 = selective_scan_chunked(second(in.u), second(in.delta), in.A, second(in.Bm),
                                   second(in.Cm), in.D, r1.h_last, 4);
  EXPECT_LT((torch::cat({r1.y, r2.y}, 1) - whole.y).abs().max().item<float>(), 1e-5);
}

TEST(Scan, LargeDecaysStayFinite) {
  // delta * A of -500 per step would overflow a naive exp(-cumsum) formulation.
  ScanShape s{1, 40, 4, 4, 16};
  ScanInputs in = make_inputs(s, torch::kFloat, 5);
  torch::NoGradGuard no_grad;
  auto delta = torch::full_like(in.delta, 50.0);
  auto r = selective_scan_chunked(in.u, delta, in.A * 10, in.Bm, in.Cm, in.D);
  auto ref = selective_scan_sequential(in.u, delta, in.A * 10, in.Bm, in.Cm, in.D);
  EXPECT_TRUE(torch::isfinite(r.y).all().item<bool>());
  EXPECT_LT((r.y - ref.y).abs().max().item<float>(), 1e-3);
}

}  // namespace
}  // namespace mmlab
