// SPDX-License-Identifier: GPL-3.0-or-later
// The router, norms, scan and loss run in fp32 even under bf16 autocast; double stays double so
// finite-difference gradient checks in double mean something.
#pragma once

#include <torch/torch.h>

namespace mmlab {

inline torch::Tensor at_least_fp32(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
}

}  // namespace mmlab
