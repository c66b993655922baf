// SPDX-License-Identifier: GPL-3.0-or-later
// Weight initialisation of the paper's code: truncated normal with std = sqrt(scale / fan_in),
// values outside [-clip, clip] redrawn (inverse-CDF sampling, so the result is exactly the
// truncated distribution, not a clamp).
#pragma once

#include <torch/torch.h>

namespace mmlab {

constexpr double kInitScale = 0.1;
constexpr double kInitClip = 0.2;

/// Fills `w` in place from N(0, scale/fan_in) truncated to [-clip, clip].
void init_truncated_normal_(torch::Tensor w, double fan_in, double scale = kInitScale,
                            double clip = kInitClip);

/// The standard deviation of N(0, sigma^2) truncated to [-clip, clip] (used by tests).
double truncated_normal_std(double sigma, double clip);

}  // namespace mmlab
