// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/speedup.h"

#include <algorithm>
#include <cmath>

namespace mmlab {

std::optional<double> final_value(const LossCurve& curve) {
  if (curve.value.empty() || std::isnan(curve.value.back())) return std::nullopt;
  return curve.value.back();
}

std::optional<double> tokens_to_reach(const LossCurve& curve, double target) {
  const size_t n = std::min(curve.tokens.size(), curve.value.size());
  for (size_t i = 0; i < n; ++i) {
    if (curve.value[i] <= target) return curve.tokens[i];  // false for NaN
  }
  return std::nullopt;
}

std::optional<double> baseline_tokens(const LossCurve& baseline) {
  const std::optional<double> target = final_value(baseline);
  if (!target) return std::nullopt;
  return tokens_to_reach(baseline, *target);
}

std::optional<double> speedup(const LossCurve& baseline, const LossCurve& other) {
  const std::optional<double> target = final_value(baseline);
  if (!target) return std::nullopt;
  const std::optional<double> base = tokens_to_reach(baseline, *target);
  const std::optional<double> reached = tokens_to_reach(other, *target);
  if (!base || !reached || *base <= 0 || *reached <= 0) return std::nullopt;
  return *base / *reached;
}

}  // namespace mmlab
