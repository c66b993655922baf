// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/gradient_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace mmlab {

namespace {
constexpr char kWhat[] = "averaging the gradients";
}

// Runs after a parameter's AccumulateGrad: its .grad() then holds the step's gradient.
class GradientReducer::ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(GradientReducer* reducer, size_t param) : reducer_(reducer), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    reducer_->ready(param_);
    return outputs;
  }

 private:
  GradientReducer* reducer_;
  size_t param_;
};

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, RankGroup& group,
                                 int64_t bucket_bytes)
    : params_(std::move(params)), group_(group) {
  bucket_of_.assign(params_.size(), 0);
  seen_.assign(params_.size(), 0);
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    const bool new_bucket = buckets_.empty() || bytes + size > bucket_bytes ||
                            buckets_.back().flat.scalar_type() != p.scalar_type();
    if (new_bucket) {
      buckets_.emplace_back();
      buckets_.back().flat = torch::empty({0}, p.options());  // the dtype, until sized below
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (Bucket& b : buckets_) {
    const int64_t numel = b.offsets.back() + params_[b.params.back()].numel();
    b.flat = torch::zeros({numel}, b.flat.options().device(group_.device()));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    // Held here: the tensor keeps only a weak reference, and a new accumulator (without the
    // hook) would replace one that nothing holds.
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(this, k)));
    accumulators_.push_back(std::move(acc));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < accumulators_.size(); ++k) accumulators_[k]->del_post_hook(hook_keys_[k]);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  next_ = 0;
  started_in_backward_ = 0;
  std::fill(seen_.begin(), seen_.end(), 0);
  for (Bucket& b : buckets_) {
    b.missing = b.params.size();
    b.started = false;
  }
}

void GradientReducer::start(size_t index) {
  Bucket& b = buckets_[index];
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < b.params.size(); ++i) {
    const torch::Tensor& p = params_[b.params[i]];
    auto slice = b.flat.narrow(0, b.offsets[i], p.numel());
    const torch::Tensor& g = p.grad();
    if (g.defined()) {
      slice.copy_(g.reshape({-1}));
    } else {
      slice.zero_();  // no gradient on this rank in this step
    }
  }
  b.flat.div_(group_.world_size());
  b.pending = group_.start_sum(b.flat, kWhat);
  b.started = true;
}

void GradientReducer::ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || seen_[param] || failure_) return;
  seen_[param] = 1;
  --buckets_[bucket_of_[param]].missing;
  try {
    while (next_ < buckets_.size() && buckets_[next_].missing == 0) {
      start(next_++);
      ++started_in_backward_;
    }
  } catch (const RankLostError& e) {
    // Thrown later, from finish(): an exception out of a hook would reach the user as the
    // autograd engine's own error.
    failure_ = std::make_unique<RankLostError>(e);
  }
}

void GradientReducer::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  if (failure_) {
    RankLostError e = *failure_;
    failure_.reset();
    throw e;
  }
  while (next_ < buckets_.size()) start(next_++);
  torch::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.pending.wait();
    for (size_t i = 0; i < b.params.size(); ++i) {
      torch::Tensor& p = params_[b.params[i]];
      auto average = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(average);
      } else {
        p.mutable_grad() = average.clone();
      }
    }
  }
}

}  // namespace mmlab
