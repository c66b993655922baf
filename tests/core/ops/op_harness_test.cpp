// SPDX-License-Identifier: GPL-3.0-or-later
// One harness for every implementation of every op (ggml's test-backend-ops): each registered
// implementation other than the reference runs op x shape x dtype cases, and its outputs and
// every gradient are compared with the reference twin's on the same inputs, within a tolerance
// per dtype. Implementations on CUDA get `_CUDA` in their test names, so a machine without a GPU
// skips them; on CI the fake CPU implementation of op_dispatch_test.cpp runs the harness.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <tuple>

#include "core/ops/attention_ops.h"
#include "core/ops/lm_head_ops.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/norm_ops.h"
#include "op_test_support.h"

namespace mmlab::ops {
namespace {

struct OpCase {
  std::string op;
  std::string impl;
  torch::DeviceType device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  // Sizes; the ones an op does not have are 0.
  int64_t B = 1, Di = 1, L = 1, N = 0, K = 0;
  int64_t R = 0;  // mamba_inner: dt_rank
  int64_t V = 0;  // lm_head_loss: B tokens of width Di over V words
  // norm: B rows of width Di; rms for RMSNorm; out_bf16 for a bf16 result from `dtype` rows
  bool rms = false, out_bf16 = false;
  // attention_heads: B sequences of L steps, d_model Di in heads of hd, RoPE from position
  // `offset`; v_unused leaves v out of the loss (its gradient undefined).
  int64_t hd = 0, offset = 0;
  bool v_unused = false;
  bool z = false, D = false, bias = false, softplus = false, last_state = false, silu = false;
  bool strided = false;  // inputs are channel slices of a (2Di, B*L) projection, as in the model
  // Run in fp64 on inputs first rounded to `dtype`: the exact result that a bf16 implementation
  // approximates (see compare()). Only runners that take it read it.
  bool exact = false;
  std::string name;
};

std::string dtype_name(torch::ScalarType t) {
  return t == torch::kBFloat16 ? "bf16" : t == torch::kHalf ? "fp16" : "fp32";
}

// The shapes every implementation is held to. Each list covers L = 1, an L that is not a multiple
// of 64, a long L with small B*Di, N up to 64, and every optional input on and off.
std::vector<OpCase> scan_shapes() {
  std::vector<OpCase> v;
  auto add = [&](int64_t B, int64_t Di, int64_t L, int64_t N, bool all_on, bool strided,
                 bool last_state) {
    OpCase c;
    c.B = B, c.Di = Di, c.L = L, c.N = N;
    c.z = c.D = c.bias = c.softplus = all_on;
    c.strided = strided;
    c.last_state = last_state;
    v.push_back(c);
  };
  add(2, 4, 1, 4, true, false, true);       // one step
  add(2, 8, 77, 16, true, true, true);      // L % 64 != 0, the model's strided layout
  add(2, 8, 130, 16, false, false, true);   // no z, D, bias, softplus
  add(1, 16, 200, 64, true, false, false);  // N = 64
  add(3, 5, 64, 1, false, true, false);     // N = 1, one full chunk
  add(1, 4, 4096, 8, true, false, true);    // long
  return v;
}

std::vector<OpCase> conv_shapes() {
  std::vector<OpCase> v;
  for (int64_t K : {2, 3, 4}) {
    auto add = [&](int64_t B, int64_t Di, int64_t L, bool bias, bool silu, bool strided) {
      OpCase c;
      c.B = B, c.Di = Di, c.L = L, c.K = K;
      c.bias = bias, c.silu = silu, c.strided = strided;
      v.push_back(c);
    };
    add(2, 6, 1, true, true, false);
    add(2, 8, 77, true, true, true);
    add(3, 5, 130, false, false, false);
    add(1, 4, 4096, true, false, false);
  }
  return v;
}

std::vector<OpCase> conv_update_shapes() {
  std::vector<OpCase> v;
  for (int64_t K : {2, 3, 4}) {
    for (bool on : {true, false}) {
      OpCase c;
      c.B = 3, c.Di = 40, c.K = K, c.bias = on, c.silu = on;
      v.push_back(c);
    }
  }
  return v;
}

std::vector<OpCase> state_update_shapes() {
  std::vector<OpCase> v;
  for (int64_t N : {1, 16, 64}) {
    for (bool on : {true, false}) {
      OpCase c;
      c.B = 2, c.Di = 24, c.N = N;
      c.z = c.D = c.bias = c.softplus = on;
      v.push_back(c);
    }
  }
  return v;
}

// Every conv width; L crossing the scan kernels' chunk (32 steps at N 16, 128 at N <= 8) at a
// length that is no multiple of it; one step; N = 64; x and z as the model's channel slices.
std::vector<OpCase> mamba_inner_shapes() {
  std::vector<OpCase> v;
  auto add = [&](int64_t B, int64_t Di, int64_t L, int64_t N, int64_t R, int64_t K, bool strided) {
    OpCase c;
    c.B = B, c.Di = Di, c.L = L, c.N = N, c.R = R, c.K = K;
    c.strided = strided;
    v.push_back(c);
  };
  add(2, 8, 77, 16, 4, 4, true);
  add(1, 16, 130, 4, 3, 3, true);
  add(2, 6, 1, 4, 2, 2, false);
  add(2, 8, 100, 64, 8, 4, false);
  add(3, 5, 45, 8, 1, 2, true);
  return v;
}

// Vocabularies that are not a multiple of 8 or 64, one token, and (at GPT-2's vocabulary) more
// tokens than fit one ~1 GiB chunk of logits, so the chunk loop runs twice. 110,000 words are
// past the rows the CUDA row kernel holds in registers (13,312 16-byte vectors: 106,496 bf16
// columns), so its streaming fallback is held to the reference too.
std::vector<OpCase> lm_head_shapes() {
  std::vector<OpCase> v;
  auto add = [&](int64_t tokens, int64_t width, int64_t vocab) {
    OpCase c;
    c.B = tokens, c.Di = width, c.L = 0, c.V = vocab;
    v.push_back(c);
  };
  add(1, 8, 5);
  add(37, 64, 1000);
  add(300, 32, 257);
  add(12000, 64, 50257);
  add(300, 32, 110000);
  return v;
}

// Head dims from the smallest (one pair) to 128, several heads, one step at a decoding offset, the
// model's 8 heads of 64 over 300 steps, a projection with batch and step strides of its own (a
// slice of a longer sequence), and an unused v.
std::vector<OpCase> attention_heads_shapes() {
  std::vector<OpCase> v;
  auto add = [&](int64_t B, int64_t L, int64_t Di, int64_t hd, int64_t offset, bool strided,
                 bool v_unused) {
    OpCase c;
    c.B = B, c.L = L, c.Di = Di, c.hd = hd, c.offset = offset;
    c.strided = strided, c.v_unused = v_unused;
    v.push_back(c);
  };
  add(1, 5, 4, 2, 0, false, false);
  add(2, 7, 48, 16, 0, false, false);
  add(1, 1, 128, 64, 37, false, false);
  add(3, 33, 256, 128, 0, true, false);
  add(2, 300, 512, 64, 0, false, false);
  add(2, 19, 64, 32, 3, false, true);
  return v;
}

// Widths below one warp's 32 lanes, not a multiple of 32, at every register tier (128, 256, 512,
// 1024 columns) and its edges; one row; more rows than the backward has warps (its loop over rows
// and the partial sums); both norms; the model's bf16 result of fp32 rows.
std::vector<OpCase> norm_shapes() {
  std::vector<OpCase> v;
  auto add = [&](int64_t rows, int64_t width, bool rms, bool out_bf16) {
    OpCase c;
    c.B = rows, c.Di = width, c.L = 0;
    c.rms = rms, c.out_bf16 = out_bf16;
    v.push_back(c);
  };
  add(1, 5, false, false);
  add(37, 100, true, false);
  add(300, 257, false, true);
  add(64, 512, true, true);
  add(5000, 512, false, true);
  add(33, 768, false, false);
  add(9, 1024, true, false);
  return v;
}

template <class Registry>
std::vector<std::pair<std::string, torch::DeviceType>> implementations(const Registry& r) {
  std::vector<std::pair<std::string, torch::DeviceType>> out;
  for (const auto& name : r.names()) {
    if (name == "reference") continue;
    out.emplace_back(name, r.find(name)->device);
  }
  return out;
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> out;
  auto expand = [&](const std::string& op,
                    const std::vector<std::pair<std::string, torch::DeviceType>>& impls,
                    const std::vector<OpCase>& shapes) {
    for (const auto& [impl, device] : impls) {
      for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
        for (size_t i = 0; i < shapes.size(); ++i) {
          OpCase c = shapes[i];
          c.op = op, c.impl = impl, c.device = device, c.dtype = dtype;
          std::ostringstream n;
          n << op << "_" << impl << "_" << dtype_name(dtype) << "_B" << c.B << "_Di" << c.Di;
          if (c.L > 0 && op.find("update") == std::string::npos) n << "_L" << c.L;
          if (c.N > 0) n << "_N" << c.N;
          if (c.R > 0) n << "_R" << c.R;
          if (c.K > 0) n << "_K" << c.K;
          if (c.V > 0) n << "_V" << c.V;
          if (c.z) n << "_z";
          if (c.D) n << "_D";
          if (c.bias) n << "_bias";
          if (c.softplus) n << "_softplus";
          if (c.silu) n << "_silu";
          if (c.last_state) n << "_last";
          if (c.strided) n << "_strided";
          if (c.rms) n << "_rms";
          if (c.out_bf16) n << "_to_bf16";
          if (c.hd > 0) n << "_hd" << c.hd;
          if (c.offset > 0) n << "_from" << c.offset;
          if (c.v_unused) n << "_v_unused";
          if (device == torch::kCUDA) n << "_CUDA";
          c.name = n.str();
          out.push_back(c);
        }
      }
    }
  };
  expand("selective_scan", implementations(selective_scan_registry()), scan_shapes());
  expand("causal_conv1d", implementations(causal_conv1d_registry()), conv_shapes());
  expand("causal_conv1d_update", implementations(causal_conv1d_update_registry()),
         conv_update_shapes());
  expand("selective_state_update", implementations(selective_state_update_registry()),
         state_update_shapes());
  expand("lm_head_loss", implementations(lm_head_loss_registry()), lm_head_shapes());
  expand("mamba_inner", implementations(mamba_inner_registry()), mamba_inner_shapes());
  expand("norm", implementations(norm_registry()), norm_shapes());
  expand("attention_heads", implementations(attention_heads_registry()), attention_heads_shapes());
  return out;
}

// Leaf tensors (so each side gets its own gradients) made from one seed per case.
struct Leaves {
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  torch::Tensor add(const std::string& name, const torch::Tensor& value, bool grad = true) {
    names.push_back(name);
    tensors.push_back(value.detach().clone().requires_grad_(grad));
    return tensors.back();
  }
};

torch::TensorOptions fp32_on(torch::DeviceType d) {
  return torch::TensorOptions().dtype(torch::kFloat).device(d);
}

// (B, C, L) inputs of the op from one (2C, B*L) projection, L contiguous (as MambaLayer makes).
std::pair<torch::Tensor, torch::Tensor> channel_slices(const torch::Tensor& rows, int64_t B) {
  const int64_t C = rows.size(0) / 2;
  auto bcl = rows.view({2 * C, B, rows.size(1) / B}).permute({1, 0, 2});
  return {bcl.narrow(1, 0, C), bcl.narrow(1, C, C)};
}

// Runs `fn` (one implementation) on fresh leaves from `seed`: the outputs and, after a backward
// of random weights, every leaf's gradient.
struct Outcome {
  std::vector<std::string> names;
  std::vector<torch::Tensor> values;
};

// The output `name` and, after the backward, every leaf's gradient.
Outcome output_and_grads(const std::string& name, const torch::Tensor& y, const Leaves& leaves) {
  Outcome out;
  out.names.push_back(name);
  out.values.push_back(y.detach());
  for (size_t i = 0; i < leaves.tensors.size(); ++i) {
    out.names.push_back("grad " + leaves.names[i]);
    out.values.push_back(leaves.tensors[i].grad());
  }
  return out;
}

Outcome run_scan(const OpCase& c, const SelectiveScanRegistry::Fn& fn) {
  torch::manual_seed(1234);
  const auto d = c.device;
  const auto act = fp32_on(d).dtype(c.dtype);
  Leaves leaves;
  SelectiveScanArgs a;
  if (c.strided) {
    auto rows = leaves.add("u|z", torch::randn({2 * c.Di, c.B * c.L}, act));
    auto [u, z] = channel_slices(rows, c.B);
    a.u = u;
    if (c.z) a.z = z;
  } else {
    a.u = leaves.add("u", torch::randn({c.B, c.Di, c.L}, act));
    if (c.z) a.z = leaves.add("z", torch::randn({c.B, c.Di, c.L}, act));
  }
  // Without softplus the op takes delta as it is, so it must already be positive.
  auto raw_delta = torch::randn({c.B, c.Di, c.L}, fp32_on(d)) * 0.5 - 1.0;
  a.delta = leaves.add("delta", (c.softplus ? raw_delta : torch::softplus(raw_delta)).to(c.dtype));
  a.A = leaves.add("A", -torch::exp(torch::randn({c.Di, c.N}, fp32_on(d)) * 0.5));
  a.B = leaves.add("B", torch::randn({c.B, c.N, c.L}, act));
  a.C = leaves.add("C", torch::randn({c.B, c.N, c.L}, act));
  if (c.D) a.D = leaves.add("D", torch::randn({c.Di}, fp32_on(d)));
  if (c.bias) a.delta_bias = leaves.add("delta_bias", torch::randn({c.Di}, fp32_on(d)) * 0.1);
  a.delta_softplus = c.softplus;
  a.return_last_state = c.last_state;
  a.needs_grad = true;
  SelectiveScanResult r = fn(a);
  torch::manual_seed(99);
  auto wy = torch::randn(r.y.sizes(), fp32_on(d)).to(r.y.scalar_type());
  auto loss = (r.y.to(torch::kFloat) * wy.to(torch::kFloat)).sum();
  Outcome out;
  out.names.push_back("y");
  out.values.push_back(r.y.detach());
  if (c.last_state) {
    auto ws = torch::randn(r.last_state.sizes(), fp32_on(d));
    loss = loss + (r.last_state * ws).sum();
    out.names.push_back("last_state");
    out.values.push_back(r.last_state.detach());
  }
  loss.backward();
  for (size_t i = 0; i < leaves.tensors.size(); ++i) {
    out.names.push_back("grad " + leaves.names[i]);
    out.values.push_back(leaves.tensors[i].grad());
  }
  return out;
}

Outcome run_conv(const OpCase& c, const CausalConv1dRegistry::Fn& fn) {
  torch::manual_seed(4321);
  const auto d = c.device;
  const auto act = fp32_on(d).dtype(c.dtype);
  Leaves leaves;
  CausalConv1dArgs a;
  if (c.strided) {
    auto rows = leaves.add("x|other", torch::randn({2 * c.Di, c.B * c.L}, act));
    a.x = channel_slices(rows, c.B).first;
  } else {
    a.x = leaves.add("x", torch::randn({c.B, c.Di, c.L}, act));
  }
  a.weight = leaves.add("weight", torch::randn({c.Di, c.K}, fp32_on(d)) * 0.5);
  if (c.bias) a.bias = leaves.add("bias", torch::randn({c.Di}, fp32_on(d)));
  a.silu = c.silu;
  a.needs_grad = true;
  auto y = fn(a);
  torch::manual_seed(98);
  auto w = torch::randn(y.sizes(), fp32_on(d));
  (y.to(torch::kFloat) * w).sum().backward();
  Outcome out;
  out.names.push_back("y");
  out.values.push_back(y.detach());
  for (size_t i = 0; i < leaves.tensors.size(); ++i) {
    // The projection's other half gets no gradient from the conv: an undefined or zero grad.
    if (leaves.names[i] == "x|other") {
      out.names.push_back("grad x");
      out.values.push_back(leaves.tensors[i].grad().narrow(0, 0, c.Di));
      continue;
    }
    out.names.push_back("grad " + leaves.names[i]);
    out.values.push_back(leaves.tensors[i].grad());
  }
  return out;
}

// The decode steps run without autograd (generation): outputs and the updated state.
Outcome run_conv_update(const OpCase& c, const CausalConv1dUpdateRegistry::Fn& fn) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(777);
  const auto d = c.device;
  const auto act = fp32_on(d).dtype(c.dtype);
  CausalConv1dUpdateArgs a;
  a.conv_state = torch::randn({c.B, c.Di, c.K}, act);
  a.x = torch::randn({c.B, c.Di}, act);
  a.weight = torch::randn({c.Di, c.K}, fp32_on(d)) * 0.5;
  if (c.bias) a.bias = torch::randn({c.Di}, fp32_on(d));
  a.silu = c.silu;
  auto y = fn(a);
  return {{"y", "conv_state"}, {y, a.conv_state}};
}

Outcome run_state_update(const OpCase& c, const SelectiveStateUpdateRegistry::Fn& fn) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(555);
  const auto d = c.device;
  const auto act = fp32_on(d).dtype(c.dtype);
  SelectiveStateUpdateArgs a;
  a.state = torch::randn({c.B, c.Di, c.N}, fp32_on(d));
  a.x = torch::randn({c.B, c.Di}, act);
  auto raw_dt = torch::randn({c.B, c.Di}, fp32_on(d)) * 0.5 - 1.0;
  a.dt = (c.softplus ? raw_dt : torch::softplus(raw_dt)).to(c.dtype);
  a.A = -torch::exp(torch::randn({c.Di, c.N}, fp32_on(d)) * 0.5);
  a.B = torch::randn({c.B, c.N}, act);
  a.C = torch::randn({c.B, c.N}, act);
  if (c.D) a.D = torch::randn({c.Di}, fp32_on(d));
  if (c.z) a.z = torch::randn({c.B, c.Di}, act);
  if (c.bias) a.dt_bias = torch::randn({c.Di}, fp32_on(d)) * 0.1;
  a.dt_softplus = c.softplus;
  auto y = fn(a);
  return {{"y", "state"}, {y, a.state}};
}

// The loss is a mean over tokens: the test differentiates tokens x loss, so the gradients are
// O(1) and the tolerance table means for them what it means elsewhere.
Outcome run_lm_head_loss(const OpCase& c, const LmHeadLossRegistry::Fn& fn) {
  torch::manual_seed(2024);
  const auto d = c.device;
  Leaves leaves;
  LmHeadLossArgs a;
  a.h = leaves.add("h", torch::randn({c.B, c.Di}, fp32_on(d)));
  a.weight = leaves.add("weight", torch::randn({c.V, c.Di}, fp32_on(d)) * 0.3);
  a.targets = torch::randint(0, c.V, {c.B}, fp32_on(d).dtype(torch::kLong));
  a.compute_dtype = c.dtype;
  a.needs_grad = true;
  auto loss = fn(a);
  (loss * static_cast<double>(c.B)).backward();
  Outcome out;
  out.names.push_back("loss");
  out.values.push_back(loss.detach());
  for (size_t i = 0; i < leaves.tensors.size(); ++i) {
    out.names.push_back("grad " + leaves.names[i]);
    out.values.push_back(leaves.tensors[i].grad());
  }
  return out;
}

// Rows of the residual stream's scale with an offset (LayerNorm removes it), weights near 1.
Outcome run_norm(const OpCase& c, const NormRegistry::Fn& fn) {
  torch::manual_seed(808);
  const auto d = c.device;
  Leaves leaves;
  NormArgs a;
  a.x = leaves.add("x", (torch::randn({c.B, c.Di}, fp32_on(d)) * 2.0 + 0.5).to(c.dtype));
  a.weight = leaves.add("weight", 1.0 + 0.1 * torch::randn({c.Di}, fp32_on(d)));
  if (!c.rms) a.bias = leaves.add("bias", 0.1 * torch::randn({c.Di}, fp32_on(d)));
  a.rms = c.rms;
  a.eps = 1e-5;
  a.out_dtype = c.out_bf16 ? torch::kBFloat16 : c.dtype;
  a.needs_grad = true;
  auto y = fn(a);
  torch::manual_seed(96);
  auto w = torch::randn(y.sizes(), fp32_on(d));
  (y.to(torch::kFloat) * w).sum().backward();
  return output_and_grads("y", y, leaves);
}

// The projection's output at its scale; q, k (and v unless unused) weighted into the loss.
Outcome run_attention_heads(const OpCase& c, const AttentionHeadsRegistry::Fn& fn) {
  torch::manual_seed(2024);
  const auto d = c.device;
  const auto act = fp32_on(d).dtype(c.dtype);
  Leaves leaves;
  AttentionHeadsArgs a;
  const int64_t H = c.Di / c.hd;
  if (c.strided) {
    auto longer = leaves.add("qkv", torch::randn({c.B, c.L + 3, 3 * c.Di}, act));
    a.qkv = longer.narrow(1, 2, c.L).view({c.B, c.L, 3, H, c.hd});
  } else {
    a.qkv = leaves.add("qkv", torch::randn({c.B, c.L, 3 * c.Di}, act)).view({c.B, c.L, 3, H, c.hd});
  }
  a.offset = c.offset;
  a.theta = 10000.0;
  a.needs_grad = true;
  AttentionHeads h = fn(a);
  torch::manual_seed(95);
  auto weighted = [&](const torch::Tensor& t) {
    return (t.to(torch::kFloat) * torch::randn(t.sizes(), fp32_on(d))).sum();
  };
  auto loss = weighted(h.q) + weighted(h.k);
  if (!c.v_unused) loss = loss + weighted(h.v);
  loss.backward();
  Outcome out;
  for (const auto& [name, t] :
       {std::pair<const char*, torch::Tensor>{"q", h.q}, {"k", h.k}, {"v", h.v}}) {
    out.names.push_back(name);
    out.values.push_back(t.detach());
  }
  out.names.push_back("grad qkv");
  out.values.push_back(leaves.tensors[0].grad());
  return out;
}

// Weights of the layer's orders of magnitude (dt_proj's bias puts softplus(delta) near 0.05, as
// the layer's initialisation does), so the state carries over tens of steps.
Outcome run_mamba_inner(const OpCase& c, const MambaInnerRegistry::Fn& fn) {
  torch::manual_seed(31337);
  const auto d = c.device;
  // Drawn in fp32 whatever the case, so the exact run sees the same (rounded) values.
  auto activation = [&](at::IntArrayRef sizes) {
    auto t = torch::randn(sizes, fp32_on(d)).to(c.dtype);
    return c.exact ? t.to(torch::kDouble) : t;
  };
  auto weight = [&](const torch::Tensor& t) { return c.exact ? t.to(torch::kDouble) : t; };
  Leaves leaves;
  MambaInnerArgs a;
  if (c.strided) {
    auto rows = leaves.add("x|z", activation({2 * c.Di, c.B * c.L}));
    std::tie(a.x, a.z) = channel_slices(rows, c.B);
  } else {
    a.x = leaves.add("x", activation({c.B, c.Di, c.L}));
    a.z = leaves.add("z", activation({c.B, c.Di, c.L}));
  }
  const double in_scale = 1.0 / std::sqrt(static_cast<double>(c.Di));
  a.conv_weight = leaves.add("conv_weight", weight(torch::randn({c.Di, c.K}, fp32_on(d)) * 0.5));
  a.conv_bias = leaves.add("conv_bias", weight(torch::randn({c.Di}, fp32_on(d)) * 0.5));
  a.x_proj_weight = leaves.add("x_proj_weight",
                               weight(torch::randn({c.R + 2 * c.N, c.Di}, fp32_on(d)) * in_scale));
  a.dt_proj_weight = leaves.add("dt_proj_weight", weight(torch::randn({c.Di, c.R}, fp32_on(d)) /
                                                         std::sqrt(static_cast<double>(c.R))));
  a.dt_proj_bias = leaves.add("dt_proj_bias", weight(torch::randn({c.Di}, fp32_on(d)) * 0.5 - 3.0));
  a.A = leaves.add("A", weight(-torch::exp(torch::randn({c.Di, c.N}, fp32_on(d)) * 0.5)));
  a.D = leaves.add("D", weight(torch::randn({c.Di}, fp32_on(d))));
  a.compute_dtype = c.exact ? torch::kDouble : c.dtype;
  a.needs_grad = true;
  auto y = fn(a);
  torch::manual_seed(97);
  auto w = weight(torch::randn(y.sizes(), fp32_on(d)));
  (y.to(w.scalar_type()) * w).sum().backward();
  return output_and_grads("y", y, leaves);
}

// What a run of the implementation under test throws when its why_not refuses the arguments.
struct Refused {
  std::string why;
};

// Runs the case with `impl` and with the reference (on the same inputs) and compares every value.
// With `exact_runs` (the runner reads OpCase::exact) a bf16 case is instead held to the exact
// result: each value within the table's tolerance of it, or no further from it than twice the
// reference's own bf16 error. bf16 rounds the intermediates each implementation keeps in its own
// places (the kernel keeps delta and the scan's gradients in the input dtype, the reference rounds
// after each LibTorch op), so two correct implementations can differ by more than either errs.
template <class Registry, class Runner>
void compare(const OpCase& c, const Registry& registry, Runner run, bool exact_runs = false) {
  const auto impl = registry.find(c.impl);
  ASSERT_TRUE(impl.has_value()) << c.impl << " vanished from " << c.op;
  Outcome got;
  try {
    got = run(c, [&](const auto& args) {
      if (std::string why = impl->why_not(args); !why.empty()) throw Refused{why};
      return impl->fn(args);
    });
  } catch (const Refused& r) {
    // The CUDA kernels are held to the whole table (the ops' contract: L from 1 to 4096, d_state
    // up to 64, width 2..4, fp32 and bf16); the test's CPU fake has narrower limits.
    if (c.device == torch::kCUDA) FAIL() << c.impl << " refuses a case of the contract: " << r.why;
    GTEST_SKIP() << c.impl << " does not support this case: " << r.why;
  }
  Outcome ref = run(c, registry.find("reference")->fn);
  ASSERT_EQ(got.values.size(), ref.values.size());
  // A result rounded to bf16 is held to bf16's tolerance whatever the inputs' dtype.
  const test::Tolerance tol = test::tolerance_for(c.out_bf16 ? torch::kBFloat16 : c.dtype);
  const bool against_exact = exact_runs && c.dtype == torch::kBFloat16;
  Outcome exact;
  if (against_exact) {
    OpCase e = c;
    e.exact = true;
    exact = run(e, registry.find("reference")->fn);
    ASSERT_EQ(exact.values.size(), ref.values.size());
  }
  for (size_t i = 0; i < ref.values.size(); ++i) {
    const bool grad = ref.names[i].rfind("grad ", 0) == 0;
    const double t = grad ? tol.grad : tol.out;
    if (!against_exact) {
      EXPECT_TRUE(test::close(got.values[i], ref.values[i], t))
          << ref.names[i] << ": " << test::difference(got.values[i], ref.values[i]);
      continue;
    }
    const torch::Tensor& truth = exact.values[i];
    const double allowed =
        std::max(t * test::scale_of(truth), 2.0 * test::max_error(ref.values[i], truth));
    EXPECT_LE(test::max_error(got.values[i], truth), allowed)
        << ref.names[i] << ": " << c.impl << " " << test::difference(got.values[i], truth)
        << "; reference " << test::difference(ref.values[i], truth) << " (both against fp64)";
  }
}

class OpHarness : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpHarness, MatchesReferenceOnOutputsAndGradients) {
  const OpCase& c = GetParam();
  if (c.op == "selective_scan") compare(c, selective_scan_registry(), run_scan);
  if (c.op == "causal_conv1d") compare(c, causal_conv1d_registry(), run_conv);
  if (c.op == "causal_conv1d_update") compare(c, causal_conv1d_update_registry(), run_conv_update);
  if (c.op == "selective_state_update")
    compare(c, selective_state_update_registry(), run_state_update);
  if (c.op == "lm_head_loss") compare(c, lm_head_loss_registry(), run_lm_head_loss);
  if (c.op == "norm") compare(c, norm_registry(), run_norm);
  if (c.op == "attention_heads") compare(c, attention_heads_registry(), run_attention_heads);
  if (c.op == "mamba_inner") {
    // The reference's own conv and scan calls take their reference twins: an implementation is
    // held to plain tensor code, not to the other kernels.
    OpsChoice reference;
    reference.all = "reference";
    ScopedOpsChoice scope(reference);
    compare(c, mamba_inner_registry(), run_mamba_inner, /*exact_runs=*/true);
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpHarness, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });

}  // namespace
}  // namespace mmlab::ops
