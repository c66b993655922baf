// SPDX-License-Identifier: GPL-3.0-or-later
// `train.ops` of a run: applied to the op registries (core/ops/registry.h) for the run's
// duration, and checked before the run starts against the calls its model will make.
#pragma once

#include <map>
#include <string>

#include "core/config/config.h"
#include "core/ops/registry.h"

namespace mmlab {

/// Refuses, with a UserError of one sentence naming the op, the implementation and what it cannot
/// do, a `train.ops` that names an unknown op or implementation, or an implementation that cannot
/// run the calls this run's model makes in training and evaluation (its shapes, its dtype: bf16
/// on CUDA under autocast, else fp32, and its device). Checked on meta tensors: nothing runs.
void check_ops_choice(const RunConfig& run);

/// "op=implementation, ..." of used_implementations(), for logs and tables; "" when none ran.
std::string describe_ops(const std::map<std::string, std::string>& used);

}  // namespace mmlab
