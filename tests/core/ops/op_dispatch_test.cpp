// SPDX-License-Identifier: GPL-3.0-or-later
// The op registry without a GPU: a fake CPU implementation of selective_scan, causal_conv1d and
// mamba_inner, registered only in this test binary (they call the reference and count calls; the
// scan refuses d_state > 8 and L > 1024, mamba_inner d_state > 8), proves what "auto" picks, its
// fallback and its one-time note, that an explicit choice that cannot run and an unknown name are
// refused with the op, implementation and property named, what used_implementations() reports, that
// mamba_inner's reference dispatches its conv and scan on their own, and that MambaLayer's calls
// look like the arguments a run is checked against before it starts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/models/mamba_layer.h"
#include "core/models/op_choice.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/moe_ops.h"
#include "core/ops/op_catalog.h"
#include "core/util/error.h"
#include "op_test_support.h"

namespace mmlab::ops {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kFakeMaxState = 8;
constexpr int64_t kFakeMaxLength = 1024;
constexpr char kFake[] = "fake_cpu";

std::atomic<int> g_fake_scan_calls{0};
std::atomic<int> g_fake_conv_calls{0};
std::atomic<int> g_fake_inner_calls{0};
std::atomic<int> g_fake_moe_calls{0};
// What the fakes were last called with (sizes, strides and dtypes are all the check uses).
SelectiveScanArgs g_last_scan;
CausalConv1dArgs g_last_conv;
MambaInnerArgs g_last_inner;

std::string fake_inner_why_not(const MambaInnerArgs& a) {
  if (a.A.size(1) > kFakeMaxState) {
    return "d_state " + std::to_string(a.A.size(1)) + " > " + std::to_string(kFakeMaxState);
  }
  return "";
}

std::string fake_scan_why_not(const SelectiveScanArgs& a) {
  if (a.A.size(1) > kFakeMaxState) {
    return "d_state " + std::to_string(a.A.size(1)) + " > " + std::to_string(kFakeMaxState);
  }
  // Like a kernel's limit; it also keeps the harness's long-L case (a reference run of seconds)
  // for the real kernels.
  if (a.u.size(2) > kFakeMaxLength) {
    return "length " + std::to_string(a.u.size(2)) + " > " + std::to_string(kFakeMaxLength);
  }
  return "";
}

// Registered before main() (and so before gtest lists the harness's implementations); a test
// binary's own object files keep their initialisers, unlike a static library's.
const bool kFakesRegistered = [] {
  selective_scan_registry().add(
      {kFake, torch::kCPU, fake_scan_why_not, [](const SelectiveScanArgs& a) {
         ++g_fake_scan_calls;
         g_last_scan = a;
         return selective_scan_reference(a);
       }});
  causal_conv1d_registry().add({kFake, torch::kCPU, [](const CausalConv1dArgs&) { return ""; },
                                [](const CausalConv1dArgs& a) {
                                  ++g_fake_conv_calls;
                                  g_last_conv = a;
                                  return causal_conv1d_reference(a);
                                }});
  mamba_inner_registry().add({kFake, torch::kCPU, fake_inner_why_not, [](const MambaInnerArgs& a) {
                                ++g_fake_inner_calls;
                                g_last_inner = a;
                                return mamba_inner_reference(a);
                              }});
  // The Mamba variants with MoE projections call switch_moe too; a run that names the fake for
  // every op must find one there.
  switch_moe_registry().add({kFake, torch::kCPU, [](const SwitchMoeArgs&) { return ""; },
                             [](const SwitchMoeArgs& a) {
                               ++g_fake_moe_calls;
                               return switch_moe_reference(a);
                             }});
  return true;
}();

SelectiveScanArgs scan_args(int64_t N, bool requires_grad = false) {
  const int64_t B = 2, Di = 3, L = 5;
  SelectiveScanArgs a;
  a.u = torch::randn({B, Di, L}).requires_grad_(requires_grad);
  a.delta = torch::randn({B, Di, L});
  a.A = -torch::rand({Di, N}) - 0.5;
  a.B = torch::randn({B, N, L});
  a.C = torch::randn({B, N, L});
  a.delta_softplus = true;
  return a;
}

OpsChoice choice_of(const std::string& all) {
  OpsChoice c;
  c.all = all;
  return c;
}

TEST(OpDispatch, AutoPicksTheLatestImplementationThatSupportsTheCall) {
  ScopedOpsChoice scope(choice_of("auto"));
  clear_used_implementations();
  const int before = g_fake_scan_calls;
  auto a = scan_args(kFakeMaxState);
  auto r = selective_scan(a);
  EXPECT_EQ(g_fake_scan_calls, before + 1);
  EXPECT_EQ(used_implementations().at("selective_scan"), kFake);
  // It is the reference's result (the fake calls it), so nothing else differs.
  EXPECT_TRUE(torch::equal(r.y, selective_scan_reference(a).y));
}

TEST(OpDispatch, AutoFallsBackToTheReferenceAndSaysWhyOnce) {
  ScopedOpsChoice scope(choice_of("auto"));
  clear_used_implementations();
  const int before = g_fake_scan_calls;
  // d_state 13 is used by no other test here, so this process has not printed its note yet.
  ::testing::internal::CaptureStderr();
  selective_scan(scan_args(13));
  selective_scan(scan_args(13));
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(g_fake_scan_calls, before);
  EXPECT_EQ(used_implementations().at("selective_scan"), "reference");
  const std::string note =
      "mmlab: op selective_scan uses its reference implementation (fake_cpu: d_state 13 > 8)\n";
  EXPECT_EQ(log, note);
}

TEST(OpDispatch, ExplicitChoiceThatCannotRunIsAUserErrorNamingOpImplementationAndProperty) {
  ScopedOpsChoice scope(choice_of(kFake));
  try {
    selective_scan(scan_args(16));
    FAIL() << "the fake ran d_state 16";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("selective_scan"));
    EXPECT_THAT(e.message(), HasSubstr(kFake));
    EXPECT_THAT(e.message(), HasSubstr("d_state 16 > 8"));
  }
  // Where it can run, the explicit choice is taken.
  const int before = g_fake_scan_calls;
  selective_scan(scan_args(4));
  EXPECT_EQ(g_fake_scan_calls, before + 1);
}

TEST(OpDispatch, ReferenceChoiceBypassesFasterImplementations) {
  ScopedOpsChoice scope(choice_of("reference"));
  const int before = g_fake_scan_calls;
  selective_scan(scan_args(4));
  EXPECT_EQ(g_fake_scan_calls, before);
  EXPECT_EQ(used_implementations().at("selective_scan"), "reference");
}

TEST(OpDispatch, UnknownImplementationIsRefusedListingTheKnownOnes) {
  ScopedOpsChoice scope(choice_of("nope"));
  try {
    selective_scan(scan_args(4));
    FAIL() << "an unknown implementation ran";
  } catch (const UserError& e) {
    EXPECT_THAT(e.message(), HasSubstr("'nope'"));
    EXPECT_THAT(e.hint(), HasSubstr("reference"));
    EXPECT_THAT(e.hint(), HasSubstr(kFake));
  }
}

TEST(OpDispatch, PerOpChoiceOverridesTheDefault) {
  OpsChoice c = choice_of("reference");
  c.per_op["selective_scan"] = kFake;
  ScopedOpsChoice scope(c);
  const int scans = g_fake_scan_calls;
  selective_scan(scan_args(4));
  EXPECT_EQ(g_fake_scan_calls, scans + 1);
  const int convs = g_fake_conv_calls;
  CausalConv1dArgs conv;
  conv.x = torch::randn({1, 3, 6});
  conv.weight = torch::randn({3, 4});
  causal_conv1d(conv);
  EXPECT_EQ(g_fake_conv_calls, convs);  // "reference" for every other op
}

TEST(OpDispatch, ChoiceIsPerThreadAndRestoredAtScopeEnd) {
  {
    ScopedOpsChoice scope(choice_of("reference"));
    std::string seen;
    std::thread([&] { seen = current_choice().for_op("selective_scan"); }).join();
    EXPECT_EQ(seen, "auto");
    EXPECT_EQ(current_choice().for_op("selective_scan"), "reference");
  }
  EXPECT_EQ(current_choice().for_op("selective_scan"), "auto");
}

TEST(OpDispatch, CallSiteFillsNeedsGrad) {
  ScopedOpsChoice scope(choice_of(kFake));
  selective_scan(scan_args(4, /*requires_grad=*/true));
  EXPECT_TRUE(g_last_scan.needs_grad);
  selective_scan(scan_args(4, false));
  EXPECT_FALSE(g_last_scan.needs_grad);
  {
    torch::NoGradGuard no_grad;
    selective_scan(scan_args(4, true));
    EXPECT_FALSE(g_last_scan.needs_grad);
  }
}

TEST(OpDispatch, MambaInnerCallSiteFillsNeedsGradAndTheProductsDtype) {
  ScopedOpsChoice scope(choice_of(kFake));
  torch::manual_seed(3);
  const int64_t B = 2, Di = 4, L = 6, N = 2, R = 1, K = 3;
  MambaInnerArgs a;
  // bf16 activations on the CPU: no autocast, so the products come out in x's dtype.
  a.x = torch::randn({B, Di, L}).to(torch::kBFloat16);
  a.z = torch::randn({B, Di, L}).to(torch::kBFloat16);
  a.conv_weight = torch::randn({Di, K});
  a.conv_bias = torch::randn({Di});
  a.x_proj_weight = torch::randn({R + 2 * N, Di}).requires_grad_();
  a.dt_proj_weight = torch::randn({Di, R});
  a.dt_proj_bias = torch::randn({Di});
  a.A = -torch::rand({Di, N}) - 0.5;
  a.D = torch::randn({Di});
  auto y = mamba_inner(a);
  EXPECT_TRUE(g_last_inner.needs_grad);
  EXPECT_EQ(g_last_inner.compute_dtype, torch::kBFloat16);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(y.sizes(), a.x.sizes());
  {
    torch::NoGradGuard no_grad;
    mamba_inner(a);
    EXPECT_FALSE(g_last_inner.needs_grad);
  }
}

TEST(OpDispatch, MambaInnerReferenceDispatchesItsConvAndScanOnTheirOwn) {
  torch::manual_seed(0);
  MambaLayerOptions o(16);
  o.d_state(4).d_conv(3);
  MambaLayer layer(o);
  auto h = torch::randn({2, 5, 16});
  OpsChoice c = choice_of("reference");
  c.per_op["causal_conv1d"] = kFake;
  ScopedOpsChoice scope(c);
  clear_used_implementations();
  const int inners = g_fake_inner_calls, convs = g_fake_conv_calls, scans = g_fake_scan_calls;
  auto out = layer->forward(h);
  EXPECT_EQ(g_fake_inner_calls, inners);
  EXPECT_EQ(g_fake_conv_calls, convs + 1);
  EXPECT_EQ(g_fake_scan_calls, scans);
  EXPECT_EQ(used_implementations(),
            (std::map<std::string, std::string>{{"causal_conv1d", kFake},
                                                {"mamba_inner", "reference"},
                                                {"selective_scan", "reference"}}));
  // The fake is the reference: the whole layer's output is the all-reference one.
  ScopedOpsChoice all_reference(choice_of("reference"));
  EXPECT_TRUE(torch::equal(out, layer->forward(h)));
}

TEST(OpDispatch, ImplementationOfAnotherDeviceIsNotPickedByAuto) {
  // A CUDA-only entry never runs CPU calls, whatever it supports.
  Registry<int, int> r("toy", [](const int& x) { return x; });
  r.add({"gpu", torch::kCUDA, [](const int&) { return ""; }, [](const int& x) { return -x; }});
  ScopedOpsChoice scope(choice_of("auto"));
  EXPECT_EQ(r(torch::kCPU, 5), 5);
  EXPECT_EQ(r.why_not("gpu", torch::kCPU, 5), "runs on cuda only");
  EXPECT_EQ(r.why_not("gpu", torch::kCUDA, 5), "");
}

// --- the model's calls ---------------------------------------------------------------------------

MambaLayerOptions layer_options(bool conv_moe, bool gate_moe, bool out_moe) {
  MambaLayerOptions o(16);
  o.d_state(4).d_conv(3).conv_moe(conv_moe).gate_moe(gate_moe).out_moe(out_moe);
  o.moe(SwitchMoeOptions(16, 16, 32, 2).capacity_factor(4.0));
  return o;
}

void expect_same_layout(const torch::Tensor& got, const torch::Tensor& want, const char* what) {
  ASSERT_EQ(got.defined(), want.defined()) << what;
  if (!got.defined()) return;
  EXPECT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_EQ(got.strides(), want.strides()) << what;
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << what;
}

class MambaLayerCalls : public ::testing::TestWithParam<std::tuple<bool, bool, bool>> {};

TEST_P(MambaLayerCalls, MatchTheArgumentsARunIsCheckedAgainst) {
  const auto [conv_moe, gate_moe, out_moe] = GetParam();
  const MambaLayerOptions o = layer_options(conv_moe, gate_moe, out_moe);
  const int64_t B = 3, L = 7;
  torch::manual_seed(0);
  MambaLayer layer(o);
  ScopedOpsChoice scope(choice_of(kFake));
  const int inners = g_fake_inner_calls;
  const int moes = g_fake_moe_calls;
  layer->forward(torch::randn({B, L, 16}));
  ASSERT_EQ(g_fake_inner_calls, inners + 1);
  EXPECT_EQ(g_fake_moe_calls, moes + int(conv_moe) + int(gate_moe) + int(out_moe));
  MambaForwardOpArgs want = MambaLayerImpl::forward_op_args(o, B, L, torch::kFloat, true);
  const MambaInnerArgs& gi = g_last_inner;
  const MambaInnerArgs& wi = want.inner;
  expect_same_layout(gi.x, wi.x, "inner x");
  expect_same_layout(gi.z, wi.z, "inner z");
  expect_same_layout(gi.conv_weight, wi.conv_weight, "inner conv_weight");
  expect_same_layout(gi.conv_bias, wi.conv_bias, "inner conv_bias");
  expect_same_layout(gi.x_proj_weight, wi.x_proj_weight, "inner x_proj_weight");
  expect_same_layout(gi.dt_proj_weight, wi.dt_proj_weight, "inner dt_proj_weight");
  expect_same_layout(gi.dt_proj_bias, wi.dt_proj_bias, "inner dt_proj_bias");
  expect_same_layout(gi.A, wi.A, "inner A");
  expect_same_layout(gi.D, wi.D, "inner D");
  EXPECT_EQ(gi.compute_dtype, wi.compute_dtype);
  EXPECT_EQ(gi.needs_grad, wi.needs_grad);
  for (const torch::Tensor* t : {&gi.x, &gi.z}) EXPECT_EQ(t->stride(2), 1);
  expect_same_layout(g_last_conv.x, want.conv.x, "conv x");
  expect_same_layout(g_last_conv.weight, want.conv.weight, "conv weight");
  expect_same_layout(g_last_conv.bias, want.conv.bias, "conv bias");
  EXPECT_EQ(g_last_conv.silu, want.conv.silu);
  EXPECT_EQ(g_last_conv.needs_grad, want.conv.needs_grad);
  const SelectiveScanArgs& s = g_last_scan;
  const SelectiveScanArgs& w = want.scan;
  expect_same_layout(s.u, w.u, "u");
  expect_same_layout(s.delta, w.delta, "delta");
  expect_same_layout(s.A, w.A, "A");
  expect_same_layout(s.B, w.B, "B");
  expect_same_layout(s.C, w.C, "C");
  expect_same_layout(s.D, w.D, "D");
  expect_same_layout(s.z, w.z, "z");
  expect_same_layout(s.delta_bias, w.delta_bias, "delta_bias");
  EXPECT_EQ(s.delta_softplus, w.delta_softplus);
  EXPECT_EQ(s.return_last_state, w.return_last_state);
  EXPECT_EQ(s.needs_grad, w.needs_grad);
  // The layout the kernels read: L contiguous in every (B, C, L) input.
  for (const torch::Tensor* t : {&s.u, &s.delta, &s.B, &s.C, &s.z}) EXPECT_EQ(t->stride(2), 1);
}

INSTANTIATE_TEST_SUITE_P(Variants, MambaLayerCalls,
                         ::testing::Values(std::make_tuple(false, false, false),
                                           std::make_tuple(true, false, false),
                                           std::make_tuple(false, true, true),
                                           std::make_tuple(true, true, false)));

TEST(MambaLayerOps, UsedImplementationsReportWhatTheLayerRan) {
  torch::manual_seed(0);
  MambaLayer layer(layer_options(false, false, false));
  auto h = torch::randn({2, 5, 16});
  {
    ScopedOpsChoice scope(choice_of("reference"));
    clear_used_implementations();
    layer->forward(h);
    EXPECT_EQ(used_implementations(),
              (std::map<std::string, std::string>{{"causal_conv1d", "reference"},
                                                  {"mamba_inner", "reference"},
                                                  {"selective_scan", "reference"}}));
    std::vector<LayerCache> caches(1);
    torch::NoGradGuard no_grad;
    layer->decode(h.narrow(1, 0, 1), caches[0]);
    EXPECT_EQ(used_implementations().at("causal_conv1d_update"), "reference");
    EXPECT_EQ(used_implementations().at("selective_state_update"), "reference");
  }
  ScopedOpsChoice scope(choice_of("auto"));
  clear_used_implementations();
  layer->forward(h);
  EXPECT_EQ(used_implementations().at("mamba_inner"), kFake);     // d_state 4 <= 8
  EXPECT_EQ(used_implementations().at("selective_scan"), kFake);  // called by its reference
  EXPECT_EQ(used_implementations().at("causal_conv1d"), kFake);
}

// --- train.ops checked before a run --------------------------------------------------------------

RunConfig mamba_run(int d_state, const std::string& ops) {
  RunConfig r;
  r.name = "m";
  r.model.family = "mamba";
  r.model.d_model = 16;
  r.model.d_state = d_state;
  r.model.n_block = 1;
  r.train.batch_size = 4;
  r.train.seq_len = 32;
  r.train.ops.all = ops;
  return r;
}

std::string check_message(const RunConfig& r) {
  try {
    check_ops_choice(r);
  } catch (const UserError& e) {
    EXPECT_EQ(e.hint(), "") << "one sentence, with its fix";
    return e.message();
  }
  return "";
}

// The fakes exist for these three ops only (the decode ops have none).
RunConfig with_fakes(RunConfig r) {
  r.train.ops.per_op = {
      {"selective_scan", kFake}, {"causal_conv1d", kFake}, {"mamba_inner", kFake}};
  return r;
}

TEST(OpsChoiceCheck, AcceptsAutoReferenceAndAnImplementationThatRunsTheShapes) {
  EXPECT_EQ(check_message(mamba_run(16, "auto")), "");
  EXPECT_EQ(check_message(mamba_run(16, "reference")), "");
  EXPECT_EQ(check_message(with_fakes(mamba_run(8, "auto"))), "");
}

TEST(OpsChoiceCheck, RefusesAnImplementationThatCannotRunTheShapesInOneSentence) {
  const std::string m = check_message(with_fakes(mamba_run(16, "auto")));
  EXPECT_THAT(m, HasSubstr("op selective_scan"));
  EXPECT_THAT(m, HasSubstr("'fake_cpu'"));
  EXPECT_THAT(m, HasSubstr("d_state 16 > 8"));
  EXPECT_EQ(m.find(". "), std::string::npos) << m;  // one sentence
}

TEST(OpsChoiceCheck, RefusesAMambaInnerThatCannotRunTheShapes) {
  RunConfig r = mamba_run(16, "auto");
  r.train.ops.per_op["mamba_inner"] = kFake;
  const std::string m = check_message(r);
  EXPECT_THAT(m, HasSubstr("op mamba_inner"));
  EXPECT_THAT(m, HasSubstr("'fake_cpu'"));
  EXPECT_THAT(m, HasSubstr("d_state 16 > 8"));
  EXPECT_EQ(m.find(". "), std::string::npos) << m;  // one sentence
  EXPECT_EQ(check_message(with_fakes(mamba_run(8, "auto"))), "");
}

TEST(OpsChoiceCheck, RefusesAnImplementationOfAnotherDevice) {
  RunConfig r = with_fakes(mamba_run(8, "auto"));
  r.train.device = "cuda";
  const std::string m = check_message(r);
  EXPECT_THAT(m, HasSubstr("op causal_conv1d"));
  EXPECT_THAT(m, HasSubstr("runs on cpu only"));
}

TEST(OpsChoiceCheck, RefusesUnknownImplementationsAndOps) {
  EXPECT_THAT(check_message(mamba_run(8, "nope")),
              HasSubstr("op selective_scan has no implementation 'nope'"));
  // One name for every op: each op must have it.
  EXPECT_THAT(check_message(mamba_run(8, kFake)),
              HasSubstr("op selective_state_update has no implementation 'fake_cpu'"));
  RunConfig r = mamba_run(8, "auto");
  r.train.ops.per_op["selective_scn"] = "reference";
  EXPECT_THAT(check_message(r), HasSubstr("op 'selective_scn', which does not exist"));
}

TEST(OpsChoiceCheck, ModelWithoutMambaLayersChecksOnlyNames) {
  RunConfig r = with_fakes(mamba_run(16, "auto"));
  r.model.family = "transformer";
  EXPECT_EQ(check_message(r), "");
}

TEST(OpsChoiceCheck, PerOpChoiceIsCheckedForItsOpOnly) {
  RunConfig r = mamba_run(16, "auto");
  r.train.ops.per_op["causal_conv1d"] = kFake;  // the conv fake runs anything
  EXPECT_EQ(check_message(r), "");
  r.train.ops.per_op["selective_scan"] = kFake;
  EXPECT_THAT(check_message(r), HasSubstr("d_state 16 > 8"));
}

// --- the harness's comparison can fail -----------------------------------------------------------

TEST(OpTolerance, DetectsAWrongResultAndAMissingGradient) {
  auto want = torch::randn({4, 5});
  EXPECT_TRUE(test::close(want + 1e-5, want, test::tolerance_for(torch::kFloat).out));
  EXPECT_FALSE(test::close(want + 1e-2, want, test::tolerance_for(torch::kFloat).out));
  EXPECT_FALSE(test::close(torch::Tensor(), want, 1.0));
  EXPECT_FALSE(test::close(want.t(), want, 1.0));
  auto nan = want.clone();
  nan[0][0] = NAN;
  EXPECT_FALSE(test::close(nan, want, 1.0));
}

TEST(OpCatalog, EveryOpIsListedOnceWithItsImplementationsReferenceFirst) {
  const std::vector<std::string>& names = ops::op_names();
  EXPECT_THAT(names,
              ::testing::ElementsAre("selective_scan", "causal_conv1d", "mamba_inner",
                                     "selective_state_update", "causal_conv1d_update",
                                     "lm_head_loss", "switch_moe", "norm", "attention_heads"));
  for (const std::string& op : names) {
    const std::vector<std::string> impls = ops::implementation_names(op);
    ASSERT_FALSE(impls.empty()) << op;
    EXPECT_EQ(impls.front(), "reference") << op;
  }
  EXPECT_TRUE(ops::implementation_names("no_such_op").empty());
}

}  // namespace
}  // namespace mmlab::ops
