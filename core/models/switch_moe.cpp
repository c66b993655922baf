// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/switch_moe.h"

#include <cmath>

#include "core/models/init.h"
#include "core/ops/moe_ops.h"
#include "core/ops/precision.h"
#include "core/ops/torch_compat.h"

namespace mmlab {

SwitchMoeImpl::SwitchMoeImpl(const SwitchMoeOptions& o) : options(o) {
  router = register_module(
      "router", torch::nn::Linear(torch::nn::LinearOptions(o.d_in(), o.n_expert()).bias(false)));
  w1 = register_parameter("w1", torch::empty({o.n_expert(), o.d_in(), o.d_expert()}));
  w2 = register_parameter("w2", torch::empty({o.n_expert(), o.d_expert(), o.d_out()}));
  reset_parameters();
}

void SwitchMoeImpl::reset_parameters() {
  init_truncated_normal_(router->weight, static_cast<double>(options.d_in()));
  init_truncated_normal_(w1, static_cast<double>(options.d_in()));
  // The authors' code counts all experts' hidden units as the second matrix's fan-in.
  init_truncated_normal_(w2, static_cast<double>(options.n_expert() * options.d_expert()));
}

int64_t SwitchMoeImpl::capacity(int64_t tokens) const {
  return static_cast<int64_t>(
      std::floor(options.capacity_factor() * static_cast<double>(tokens) / options.n_expert()));
}

torch::Tensor SwitchMoeImpl::router_probs(const torch::Tensor& x) {
  compat::NoAutocast fp32;
  auto xr = at_least_fp32(x);
  auto logits = torch::matmul(xr, router->weight.to(xr.scalar_type()).t());
  return torch::softmax(logits, -1);  // (T, X)
}

torch::Tensor SwitchMoeImpl::decode(const torch::Tensor& x_in, LayerCache& cache) {
  (void)cache;
  const int64_t Din = options.d_in();
  // Generation's few tokens per step take their experts' weights directly: route()'s capacity
  // bookkeeping costs more than the experts for a token or two.
  constexpr int64_t kGatheredTokens = 16;
  if (x_in.numel() / Din > kGatheredTokens) return route(x_in, false);
  auto out_shape = x_in.sizes().vec();
  out_shape.back() = options.d_out();
  auto x = x_in.reshape({-1, Din});  // (T, Din)
  auto top = router_probs(x).max(-1);
  torch::Tensor gate = std::get<0>(top);    // (T)
  torch::Tensor expert = std::get<1>(top);  // (T)
  const auto dtype = x.scalar_type();
  auto hidden = torch::relu(torch::bmm(x.unsqueeze(1), w1.index_select(0, expert).to(dtype)));
  auto y = torch::bmm(hidden, w2.index_select(0, expert).to(hidden.scalar_type())).squeeze(1);
  return (y * gate.unsqueeze(-1).to(y.scalar_type())).reshape(out_shape);  // (..., Dout)
}

torch::Tensor SwitchMoeImpl::route(const torch::Tensor& x_in, bool limit_capacity) {
  const int64_t X = options.n_expert(), Din = options.d_in(), Dout = options.d_out();
  auto out_shape = x_in.sizes().vec();
  out_shape.back() = Dout;
  auto x = x_in.reshape({-1, Din});  // (T, Din)
  const int64_t T = x.size(0);

  torch::Tensor probs = router_probs(x);  // (T, X) fp32
  ops::SwitchMoeArgs args;
  // The experts read the tokens only through their matmuls, which round them to autocast's dtype
  // anyway: dispatching them in that dtype moves half the bytes for the same result.
  args.x = x.to(matmul_dtype(x));
  args.probs = probs;
  args.w1 = w1;
  args.w2 = w2;
  args.capacity = limit_capacity ? capacity(T) : T;
  ops::SwitchMoeResult r = ops::switch_moe(args);

  // Aux loss and statistics from the router's choices before truncation, kept on the device.
  auto f = r.counts.to(probs.scalar_type()) / static_cast<double>(std::max<int64_t>(T, 1));
  auto P = probs.mean(0);
  stats_.aux_loss = options.aux_loss_weight() * static_cast<double>(X) * (f * P).sum();
  stats_.expert_tokens = r.counts.detach();
  stats_.tokens = T;
  stats_.dropped = r.dropped;
  return r.y.reshape(out_shape);
}

}  // namespace mmlab
