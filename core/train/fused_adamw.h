// SPDX-License-Identifier: GPL-3.0-or-later
// AdamW whose step is LibTorch 2.x's fused multi-tensor kernel (one launch per parameter group
// instead of ~a dozen small ops per parameter) when every parameter of the step is on a CUDA
// device; otherwise, and on a LibTorch without the kernel, it is torch::optim::AdamW's own step.
// The state lives where AdamW keeps it (same checkpoints, same resume).
#pragma once

#include <torch/torch.h>

#include <unordered_map>
#include <vector>

namespace mmlab {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;

  torch::Tensor step(LossClosure closure = nullptr) override;

  /// Whether the last step() ran the fused kernel.
  bool last_step_fused() const { return last_step_fused_; }

 private:
  bool fusable() const;
  // The kernel counts steps on the device, one float per parameter; AdamW's state keeps the
  // same count on the host (what checkpoints save). Made from it at the first fused step.
  std::unordered_map<const void*, torch::Tensor> device_steps_;
  bool last_step_fused_ = false;
};

}  // namespace mmlab
