// SPDX-License-Identifier: GPL-3.0-or-later
// The MoE-Mamba paper's speedup, the one definition behind `mmlab report` and the studio's compare
// view: tokens the baseline needed to reach its final smoothed loss divided by the tokens another
// run needed to reach that same loss. "Reach" means the first recorded point whose smoothed loss
// is <= the target, for the baseline too (a smoothed curve that dipped below its final value
// earlier had already needed only that many tokens, and both runs are then measured by the same
// rule); curves are not interpolated between points.
#pragma once

#include <optional>
#include <vector>

namespace mmlab {

/// One run's smoothed-loss curve in step order: value[i] was recorded after tokens[i] tokens.
struct LossCurve {
  std::vector<double> tokens;
  std::vector<double> value;
};

/// The value of the last point (the final smoothed loss), or nullopt when there are no points or
/// the last value is NaN (a diverged run has no final loss to compare with).
std::optional<double> final_value(const LossCurve& curve);

/// Tokens of the first point whose value is <= target; nullopt when no point gets there. NaN
/// values never reach a target.
std::optional<double> tokens_to_reach(const LossCurve& curve, double target);

/// The tokens the baseline needed to reach its own final value (its first crossing): the
/// numerator of every speedup against it. nullopt when it has no final value.
std::optional<double> baseline_tokens(const LossCurve& baseline);

/// baseline_tokens(baseline) / tokens_to_reach(other, final_value(baseline)): how many times
/// fewer tokens `other` needed to match the baseline's final smoothed loss; exactly 1 for the
/// baseline itself. nullopt when the baseline has no final value, `other` never reaches it, or
/// either token count is 0.
std::optional<double> speedup(const LossCurve& baseline, const LossCurve& other);

}  // namespace mmlab
