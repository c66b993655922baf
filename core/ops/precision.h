// SPDX-License-Identifier: GPL-3.0-or-later
// The router, norms, scan and loss run in fp32 even under bf16 autocast; double stays double so
// finite-difference gradient checks in double mean something.
#pragma once

#include <torch/torch.h>

#include "core/ops/torch_compat.h"

namespace mmlab {

inline torch::Tensor at_least_fp32(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
}

/// The dtype a matmul reading `t` computes in: CUDA autocast's for a CUDA tensor while it is on,
/// else t's own.
inline torch::ScalarType matmul_dtype(const torch::Tensor& t) {
  return t.is_cuda() && compat::cuda_autocast_enabled() ? compat::cuda_autocast_dtype()
                                                        : t.scalar_type();
}

}  // namespace mmlab
