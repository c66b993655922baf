// SPDX-License-Identifier: GPL-3.0-or-later
// Finite-difference gradient check in double precision on a few elements of every parameter.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>

namespace mmlab::test {

/// Compares autograd's gradient of `loss()` with central differences for up to `per_param`
/// elements of each of `module`'s parameters (and of `extra` inputs).
inline void expect_gradients_match(torch::nn::Module& module, std::vector<torch::Tensor> extra,
                                   const std::function<torch::Tensor()>& loss, int per_param = 4,
                                   double eps = 1e-6, double tol = 1e-5) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& p : module.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (size_t i = 0; i < extra.size(); ++i)
    tensors.emplace_back("input" + std::to_string(i), extra[i]);
  for (auto& [name, t] : tensors) {
    if (t.grad().defined()) t.mutable_grad().zero_();
  }
  loss().backward();
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : tensors) {
    ASSERT_TRUE(t.grad().defined()) << name << " received no gradient";
    auto flat = t.view({-1});
    auto gflat = t.grad().reshape({-1});
    const int64_t n = flat.numel();
    for (int k = 0; k < per_param && k < n; ++k) {
      const int64_t i = (k * 7919) % n;
      const double orig = flat[i].item<double>();
      flat[i] = orig + eps;
      const double up = loss().item<double>();
      flat[i] = orig - eps;
      const double down = loss().item<double>();
      flat[i] = orig;
      const double numeric = (up - down) / (2 * eps);
      const double analytic = gflat[i].item<double>();
      EXPECT_NEAR(analytic, numeric, tol * std::max(1.0, std::abs(numeric)))
          << name << "[" << i << "]";
    }
  }
}

}  // namespace mmlab::test
