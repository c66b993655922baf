// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/fused_adamw.h"

#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/ops/torch_compat.h"

namespace mmlab {

namespace {

// The key AdamW files a parameter's state under: the TensorImpl's address, as a string on 1.x
// and as the pointer itself on later versions.
template <class StateMap>
typename StateMap::key_type state_key(const StateMap&, const torch::Tensor& p) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace

bool FusedAdamW::fusable() const {
  if (!compat::fused_adamw_available()) return false;
  for (const auto& group : param_groups()) {
    if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (p.grad().defined() && (!p.is_cuda() || p.grad().is_sparse())) return false;
    }
  }
  return true;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  last_step_fused_ = fusable();
  if (!last_step_fused_) return torch::optim::AdamW::step(std::move(closure));
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto key = state_key(state_, p);
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->step(0);
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
      auto& device_step = device_steps_[p.unsafeGetTensorImpl()];
      if (!device_step.defined()) {
        device_step = torch::full({}, static_cast<double>(st.step()),
                                  torch::TensorOptions().dtype(torch::kFloat).device(p.device()));
      }
      st.step(st.step() + 1);  // the kernel adds one to device_step
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(st.exp_avg());
      exp_avg_sqs.push_back(st.exp_avg_sq());
      steps.push_back(device_step);
    }
    if (params.empty()) continue;
    compat::fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, steps, o.lr(),
                         std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps());
  }
  return loss;
}

}  // namespace mmlab
