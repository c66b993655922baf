// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/mamba_layer.h"

#include <cmath>

#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

namespace nn = torch::nn;

namespace {

/// (C, B*L) rows -> (B, C, L) with L contiguous, no copy (channel stride B*L, batch stride L).
torch::Tensor channel_major(const torch::Tensor& rows, int64_t B) {
  return rows.view({rows.size(0), B, rows.size(1) / B}).permute({1, 0, 2});
}

SwitchMoe make_moe(const SwitchMoeOptions& base, int64_t d_in, int64_t d_out) {
  SwitchMoeOptions o = base;
  o.d_in(d_in).d_out(d_out);
  return SwitchMoe(o);
}

nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

}  // namespace

MambaLayerImpl::MambaLayerImpl(const MambaLayerOptions& o) : options(o) {
  const int64_t D_ = o.d_model(), Di = o.d_inner(), N = o.d_state(), R = o.resolved_dt_rank();
  if (!o.conv_moe() && !o.gate_moe()) {
    in_proj = register_module("in_proj", linear(D_, 2 * Di, false));
  } else {
    if (o.conv_moe()) {
      conv_proj_moe = register_module("conv_proj", make_moe(o.moe(), D_, Di));
    } else {
      conv_proj = register_module("conv_proj", linear(D_, Di, false));
    }
    if (o.gate_moe()) {
      gate_proj_moe = register_module("gate_proj", make_moe(o.moe(), D_, Di));
    } else {
      gate_proj = register_module("gate_proj", linear(D_, Di, false));
    }
  }
  conv1d = register_module(
      "conv1d",
      nn::Conv1d(nn::Conv1dOptions(Di, Di, o.d_conv()).groups(Di).padding(o.d_conv() - 1)));
  x_proj = register_module("x_proj", linear(Di, R + 2 * N, false));
  dt_proj = register_module("dt_proj", linear(R, Di, true));
  A_log = register_parameter("A_log", torch::empty({Di, N}));
  D = register_parameter("D", torch::empty({Di}));
  if (o.out_moe()) {
    out_proj_moe = register_module("out_proj", make_moe(o.moe(), Di, D_));
  } else {
    out_proj = register_module("out_proj", linear(Di, D_, false));
  }
  reset_parameters();
}

void MambaLayerImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const int64_t Di = options.d_inner(), N = options.d_state(), R = options.resolved_dt_rank();
  // dt_proj.weight ~ U(-R^-1/2, R^-1/2)
  const double dt_std = 1.0 / std::sqrt(static_cast<double>(R));
  dt_proj->weight.uniform_(-dt_std, dt_std);
  // dt_proj.bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], floored.
  const double lo = std::log(options.dt_min()), hi = std::log(options.dt_max());
  auto dt = torch::exp(torch::rand({Di}, torch::kDouble) * (hi - lo) + lo)
                .clamp_min(options.dt_init_floor());
  auto inv_dt = dt + torch::log(-torch::expm1(-dt));
  dt_proj->bias.copy_(inv_dt);
  // A = -(1..N) per channel (S4D-real); D = 1.
  A_log.copy_(torch::log(torch::arange(1, N + 1, torch::kDouble)).unsqueeze(0).expand({Di, N}));
  D.fill_(1.0);
}

std::pair<torch::Tensor, torch::Tensor> MambaLayerImpl::project_in_channel_major(
    const torch::Tensor& h) {
  const int64_t B = h.size(0), Di = options.d_inner();
  auto tokens = h.reshape({B * h.size(1), h.size(2)});  // (B*L, D)
  auto project = [&](const nn::Linear& proj) {
    return channel_major(torch::mm(proj->weight, tokens.t()), B);  // (B, C, L)
  };
  // Training capacity limits apply (decode routes without them).
  auto route = [&](SwitchMoe& moe) {
    return moe->route(h, true).transpose(1, 2).contiguous();  // (B, Di, L)
  };
  if (in_proj) {
    // One product per half of the weight rather than one product and a split: the split's
    // backward wrote each half's gradient into its own zeroed (B, 2Di, L) buffer.
    const auto tokens_t = tokens.t();  // (D, B*L)
    auto half = [&](int64_t first) {
      return channel_major(torch::mm(in_proj->weight.narrow(0, first, Di), tokens_t), B);
    };
    return {half(0), half(Di)};  // (B, Di, L) each
  }
  auto x = conv_proj_moe ? route(conv_proj_moe) : project(conv_proj);
  auto z = gate_proj_moe ? route(gate_proj_moe) : project(gate_proj);
  return {x, z};
}

std::pair<torch::Tensor, torch::Tensor> MambaLayerImpl::project_in_token_major(
    const torch::Tensor& h) {
  if (in_proj) {
    auto xz = in_proj(h).chunk(2, -1);  // 2 x (B, L, Di)
    return {xz[0], xz[1]};
  }
  auto x = conv_proj_moe ? conv_proj_moe->route(h, false) : conv_proj(h);
  auto z = gate_proj_moe ? gate_proj_moe->route(h, false) : gate_proj(h);
  return {x, z};
}

torch::Tensor MambaLayerImpl::project_out(const torch::Tensor& y, bool limit_capacity) {
  if (out_proj_moe) return out_proj_moe->route(y, limit_capacity);
  const int64_t B = y.size(0), L = y.size(1);
  return out_proj(y.reshape({B * L, y.size(2)})).view({B, L, -1});  // (B, L, D)
}

torch::Tensor MambaLayerImpl::forward(const torch::Tensor& h) {
  auto [x, z] = project_in_channel_major(h);  // (B, Di, L) each
  ops::MambaInnerArgs inner;
  inner.x = x;
  inner.z = z;
  inner.conv_weight = conv1d->weight.squeeze(1);  // (Di, K)
  inner.conv_bias = conv1d->bias;
  inner.x_proj_weight = x_proj->weight;
  inner.dt_proj_weight = dt_proj->weight;
  inner.dt_proj_bias = dt_proj->bias;
  inner.A = -torch::exp(at_least_fp32(A_log));  // (Di, N)
  inner.D = D;
  auto y = ops::mamba_inner(inner);                            // (B, Di, L)
  if (!out_proj) return project_out(y.transpose(1, 2), true);  // (B, L, D)
  const int64_t B = y.size(0), Di = y.size(1), L = y.size(2);
  if (y.permute({1, 0, 2}).is_contiguous()) {
    // y channel-major (the kernel writes it in z's layout): its (Di, B*L) rows are a matrix, so
    // one product gives the output token-major, and its backward hands y's gradient back in y's
    // layout and the weight's as one product, with no transposing copy either way.
    auto rows = y.permute({1, 0, 2}).view({Di, B * L});                 // (Di, B*L)
    return torch::mm(rows.t(), out_proj->weight.t()).view({B, L, -1});  // (B, L, D)
  }
  // Otherwise multiplied from the left like mamba_inner's products: y is never transposed into
  // a token-major copy, forward or back.
  return ops::left_multiply(out_proj->weight, y).transpose(1, 2);  // (B, L, D) view
}

MambaForwardOpArgs MambaLayerImpl::forward_op_args(const MambaLayerOptions& o, int64_t B, int64_t L,
                                                   torch::ScalarType act, bool needs_grad) {
  const int64_t Di = o.d_inner(), N = o.d_state(), K = o.d_conv();
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  const auto a = meta.dtype(act), p = meta.dtype(torch::kFloat);
  // The layouts forward() produces: projections through channel_major(), MoE outputs and op
  // outputs contiguous.
  auto projected = [&](int64_t C) { return channel_major(torch::empty({C, B * L}, a), B); };
  auto inner_in = [&](bool moe) { return moe ? torch::empty({B, Di, L}, a) : projected(Di); };
  const int64_t R = o.resolved_dt_rank();
  MambaForwardOpArgs args;
  torch::Tensor x, z;
  if (!o.conv_moe() && !o.gate_moe()) {
    x = projected(Di);
    z = projected(Di);
  } else {
    x = inner_in(o.conv_moe());
    z = inner_in(o.gate_moe());
  }
  args.inner.x = x;
  args.inner.z = z;
  args.inner.conv_weight = torch::empty({Di, 1, K}, p).squeeze(1);
  args.inner.conv_bias = torch::empty({Di}, p);
  args.inner.x_proj_weight = torch::empty({R + 2 * N, Di}, p);
  args.inner.dt_proj_weight = torch::empty({Di, R}, p);
  args.inner.dt_proj_bias = torch::empty({Di}, p);
  args.inner.A = torch::empty({Di, N}, p);
  args.inner.D = torch::empty({Di}, p);
  args.inner.compute_dtype = act;
  args.inner.needs_grad = needs_grad;

  // What mamba_inner's reference passes the two ops it calls.
  args.conv.x = x;
  args.conv.weight = args.inner.conv_weight;
  args.conv.bias = args.inner.conv_bias;
  args.conv.silu = true;
  args.conv.needs_grad = needs_grad;

  args.scan.u = torch::empty({B, Di, L}, a);
  args.scan.delta = torch::empty({B, Di, L}, a);
  args.scan.A = torch::empty({Di, N}, p);
  args.scan.B = torch::empty({B, N, L}, a);
  args.scan.C = torch::empty({B, N, L}, a);
  args.scan.D = torch::empty({Di}, p);
  args.scan.z = z;
  args.scan.delta_bias = torch::empty({Di}, p);
  args.scan.delta_softplus = true;
  args.scan.needs_grad = needs_grad;
  return args;
}

torch::Tensor MambaLayerImpl::decode(const torch::Tensor& h, LayerCache& cache) {
  const int64_t B = h.size(0), L = h.size(1), Di = options.d_inner(), N = options.d_state(),
                R = options.resolved_dt_rank();
  auto [x, z] = project_in_token_major(h);  // (B, L, Di) each
  if (!cache.conv_state.defined()) {
    cache.conv_state = torch::zeros({B, Di, options.d_conv()}, x.options());
    cache.ssm_state = torch::zeros({B, Di, N}, at_least_fp32(x).options());
  }
  if (!cache.ssm_decay.defined()) cache.ssm_decay = -torch::exp(at_least_fp32(A_log));  // (Di, N)
  const torch::Tensor& A = cache.ssm_decay;
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < L; ++t) {
    // O(1) state per token: shift the conv window, then one recurrence step.
    ops::CausalConv1dUpdateArgs conv;
    conv.conv_state = cache.conv_state;
    conv.x = x.select(1, t);                  // (B, Di)
    conv.weight = conv1d->weight.squeeze(1);  // (Di, K)
    conv.bias = conv1d->bias;
    conv.silu = true;
    auto u = ops::causal_conv1d_update(conv);  // (B, Di)

    auto x_dbl = x_proj(u);  // (B, R+2N)
    ops::SelectiveStateUpdateArgs step;
    step.state = cache.ssm_state;
    step.x = u;
    step.dt = torch::mm(x_dbl.narrow(1, 0, R), dt_proj->weight.t());  // (B, Di)
    step.A = A;
    step.B = x_dbl.narrow(1, R, N);      // (B, N)
    step.C = x_dbl.narrow(1, R + N, N);  // (B, N)
    step.D = D;
    step.z = z.select(1, t);  // (B, Di)
    step.dt_bias = dt_proj->bias;
    step.dt_softplus = true;
    outs.push_back(ops::selective_state_update(step));  // (B, Di)
  }
  cache.position += L;
  // (B, L, Di); one token, the usual decode step, needs no copy
  auto y = outs.size() == 1 ? outs[0].unsqueeze(1) : torch::stack(outs, 1);
  return project_out(y, false);  // (B, L, D)
}

void MambaLayerImpl::collect_moe(std::vector<SwitchMoeImpl*>& out) {
  if (conv_proj_moe) out.push_back(conv_proj_moe.get());
  if (gate_proj_moe) out.push_back(gate_proj_moe.get());
  if (out_proj_moe) out.push_back(out_proj_moe.get());
}

}  // namespace mmlab
