// SPDX-License-Identifier: GPL-3.0-or-later
// Gradient clipping by the global 2-norm that never reads the device: LibTorch's
// clip_grad_norm_ returns the norm as a double, a host read (and a stalled GPU queue) per step.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace mmlab {

/// Scales the gradients of `params` by min(1, max_norm / (norm + 1e-6)), norm being their
/// global 2-norm, as torch.nn.utils.clip_grad_norm_ does (no scaling for an infinite max_norm),
/// and returns that norm before clipping: an fp32 scalar on the gradients' device, for the
/// caller to read when it logs. Parameters without a gradient are skipped; no gradient at all
/// gives a zero norm on the CPU.
torch::Tensor clip_grad_norm_on_device(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace mmlab
