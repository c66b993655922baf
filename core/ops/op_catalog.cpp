// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/op_catalog.h"

#include "core/ops/attention_ops.h"
#include "core/ops/lm_head_ops.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/moe_ops.h"
#include "core/ops/norm_ops.h"

namespace mmlab::ops {

namespace {

// Calls f(registry) for every op's registry, in the catalog's order: the one list of the ops.
template <class F>
void for_each_registry(F&& f) {
  f(selective_scan_registry());
  f(causal_conv1d_registry());
  f(mamba_inner_registry());
  f(selective_state_update_registry());
  f(causal_conv1d_update_registry());
  f(lm_head_loss_registry());
  f(switch_moe_registry());
  f(norm_registry());
  f(attention_heads_registry());
}

}  // namespace

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for_each_registry([&](const auto& registry) { out.push_back(registry.op()); });
    return out;
  }();
  return names;
}

std::vector<std::string> implementation_names(const std::string& op) {
  std::vector<std::string> out;
  for_each_registry([&](const auto& registry) {
    if (registry.op() == op) out = registry.names();
  });
  return out;
}

}  // namespace mmlab::ops
