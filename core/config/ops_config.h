// SPDX-License-Identifier: GPL-3.0-or-later
// `train.ops`, in a header of its own: the op registry (core/ops) keeps its per-thread choice in
// this type too, so the experiment's value is what the ops dispatch on, with no copy between two
// structs of the same fields.
#pragma once

#include <map>
#include <string>

namespace mmlab {

/// Which implementation each op of the model uses (`train.ops`): in JSON either one name for
/// every op ("auto", "reference", or an implementation such as "cuda") or an object naming one
/// per op ({"selective_scan": "cuda"}; ops it leaves out use "auto"). "auto" takes the fastest
/// implementation that supports the call and falls back to the reference.
struct OpsConfig {
  std::string all = "auto";
  std::map<std::string, std::string> per_op;  ///< op name -> implementation name
  const std::string& for_op(const std::string& op) const {
    auto it = per_op.find(op);
    return it == per_op.end() ? all : it->second;
  }
};

}  // namespace mmlab
