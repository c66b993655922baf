// SPDX-License-Identifier: GPL-3.0-or-later
// LayerNorm (weight + bias, the paper's default) or RMSNorm (weight only, Hugging Face Mamba's),
// computed in fp32 (ops::norm) and returned in the input's dtype or the one its consumer reads.
#pragma once

#include <torch/torch.h>

#include <string>

namespace mmlab {

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, const std::string& kind, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., D) -> (..., D) in x's dtype
  /// (..., D) -> (..., D) in `out_dtype`: a matmul's dtype under autocast, written directly.
  torch::Tensor forward_to(const torch::Tensor& x, torch::ScalarType out_dtype);

  torch::Tensor weight;  // (D)
  torch::Tensor bias;    // (D), LayerNorm only

 private:
  bool rms_;
  double eps_;
};
TORCH_MODULE(Norm);

}  // namespace mmlab
