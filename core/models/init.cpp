// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/init.h"

#include <cmath>

namespace mmlab {

namespace {
double normal_cdf(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
}
double normal_pdf(double x) {
  return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}
}  // namespace

void init_truncated_normal_(torch::Tensor w, double fan_in, double scale, double clip) {
  torch::NoGradGuard no_grad;
  const double sigma = std::sqrt(scale / fan_in);
  const double lo = normal_cdf(-clip / sigma), hi = normal_cdf(clip / sigma);
  // u ~ U(lo, hi) then x = sigma * sqrt(2) * erfinv(2u - 1): the truncated normal exactly.
  auto u = torch::empty(w.sizes(), w.options().dtype(torch::kDouble)).uniform_(lo, hi);
  auto x = (u * 2 - 1).erfinv_().mul_(sigma * std::sqrt(2.0)).clamp_(-clip, clip);
  w.copy_(x);
}

double truncated_normal_std(double sigma, double clip) {
  const double b = clip / sigma;
  const double z = 2 * normal_cdf(b) - 1;
  const double var = 1.0 - 2 * b * normal_pdf(b) / z;
  return sigma * std::sqrt(var);
}

}  // namespace mmlab
