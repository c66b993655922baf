// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/mamba_layer.h"

#include <cmath>

#include "core/ops/precision.h"
#include "core/ops/selective_scan.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

namespace nn = torch::nn;
namespace I = torch::indexing;

namespace {

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

torch::Tensor MambaLayerImpl::causal_depthwise_conv(const torch::Tensor& x) {
  // K shifted multiply-adds instead of Conv1d(groups=Di): LibTorch's CPU grouped convolution
  // falls back to a per-group im2col that made a whole training step ~50x slower.
  const int64_t L = x.size(1), K = options.d_conv();
  auto w = conv1d->weight.squeeze(1).t().to(x.scalar_type());                 // (K, Di)
  auto padded = torch::constant_pad_nd(x, {0, 0, K - 1, 0});                  // (B, L+K-1, Di)
  auto y = conv1d->bias.to(x.scalar_type()) + padded.narrow(1, 0, L) * w[0];  // (B, L, Di)
  for (int64_t k = 1; k < K; ++k) y = y + padded.narrow(1, k, L) * w[k];
  return y;
}

std::pair<torch::Tensor, torch::Tensor> MambaLayerImpl::project_in(const torch::Tensor& h,
                                                                   bool limit_capacity) {
  if (in_proj) {
    auto xz = in_proj(h).chunk(2, -1);  // 2 x (B, L, Di)
    return {xz[0], xz[1]};
  }
  auto x = conv_proj_moe ? conv_proj_moe->route(h, limit_capacity) : conv_proj(h);
  auto z = gate_proj_moe ? gate_proj_moe->route(h, limit_capacity) : gate_proj(h);
  return {x, z};
}

torch::Tensor MambaLayerImpl::project_out(const torch::Tensor& y, bool limit_capacity) {
  return out_proj_moe ? out_proj_moe->route(y, limit_capacity) : out_proj(y);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> MambaLayerImpl::ssm_params(
    const torch::Tensor& u) {
  const int64_t N = options.d_state(), R = options.resolved_dt_rank();
  auto x_dbl = x_proj(u);  // (B, L, R + 2N)
  auto parts = x_dbl.split_with_sizes({R, N, N}, -1);
  auto delta = torch::softplus(at_least_fp32(dt_proj(parts[0])));  // (B, L, Di)
  return {delta, parts[1], parts[2]};
}

torch::Tensor MambaLayerImpl::forward(const torch::Tensor& h) {
  auto [x, z] = project_in(h, true);               // (B, L, Di) each
  auto u = torch::silu(causal_depthwise_conv(x));  // (B, L, Di)
  auto [delta, Bm, Cm] = ssm_params(u);
  auto A = -torch::exp(at_least_fp32(A_log));         // (Di, N)
  auto y = selective_scan(u, delta, A, Bm, Cm, D).y;  // (B, L, Di) fp32
  y = y.to(z.scalar_type()) * torch::silu(z);
  return project_out(y, true);  // (B, L, D)
}

torch::Tensor MambaLayerImpl::decode(const torch::Tensor& h, LayerCache& cache) {
  const int64_t B = h.size(0), L = h.size(1), Di = options.d_inner(), K = options.d_conv();
  if (!cache.conv_state.defined()) {
    cache.conv_state = torch::zeros({B, Di, K}, h.options());
    cache.ssm_state = torch::zeros({B, Di, options.d_state()}, at_least_fp32(h).options());
  }
  auto [x, z] = project_in(h, false);          // (B, L, Di)
  auto w = conv1d->weight.squeeze(1);          // (Di, K)
  auto A = -torch::exp(at_least_fp32(A_log));  // (Di, N)
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < L; ++t) {
    // O(1) state per token: shift the conv window, then one recurrence step.
    cache.conv_state = torch::cat({cache.conv_state.index({I::Slice(), I::Slice(), I::Slice(1, K)}),
                                   x.select(1, t).unsqueeze(-1)},
                                  -1);                                                 // (B, Di, K)
    auto u = torch::silu((cache.conv_state * w).sum(-1) + conv1d->bias).unsqueeze(1);  // (B, 1, Di)
    auto [delta, Bm, Cm] = ssm_params(u);
    auto r = selective_scan_sequential(u, delta, A, Bm, Cm, D, cache.ssm_state);
    cache.ssm_state = r.h_last;
    outs.push_back(r.y.to(z.scalar_type()) *
                   torch::silu(z.index({I::Slice(), I::Slice(t, t + 1)})));
  }
  cache.position += L;
  return project_out(torch::cat(outs, 1), false);  // (B, L, D)
}

void MambaLayerImpl::collect_moe(std::vector<SwitchMoeImpl*>& out) {
  if (conv_proj_moe) out.push_back(conv_proj_moe.get());
  if (gate_proj_moe) out.push_back(gate_proj_moe.get());
  if (out_proj_moe) out.push_back(out_proj_moe.get());
}

}  // namespace mmlab
