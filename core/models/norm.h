// SPDX-License-Identifier: GPL-3.0-or-later
// LayerNorm (weight + bias, the paper's default) or RMSNorm (weight only, Hugging Face Mamba's),
// computed in fp32 and returned in the input's dtype.
#pragma once

#include <torch/torch.h>

#include <string>

namespace mmlab {

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, const std::string& kind, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., D) -> (..., D)

  torch::Tensor weight;  // (D)
  torch::Tensor bias;    // (D), LayerNorm only

 private:
  bool rms_;
  double eps_;
};
TORCH_MODULE(Norm);

}  // namespace mmlab
