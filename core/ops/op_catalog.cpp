// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/op_catalog.h"

#include "core/ops/lm_head_ops.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/moe_ops.h"

namespace mmlab::ops {

namespace {

template <class Registry>
bool names_of(const Registry& r, const std::string& op, std::vector<std::string>& out) {
  if (r.op() != op) return false;
  out = r.names();
  return true;
}

}  // namespace

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = {selective_scan_registry().op(),
                                                 causal_conv1d_registry().op(),
                                                 mamba_inner_registry().op(),
                                                 selective_state_update_registry().op(),
                                                 causal_conv1d_update_registry().op(),
                                                 lm_head_loss_registry().op(),
                                                 switch_moe_registry().op()};
  return names;
}

std::vector<std::string> implementation_names(const std::string& op) {
  std::vector<std::string> out;
  names_of(selective_scan_registry(), op, out) || names_of(causal_conv1d_registry(), op, out) ||
      names_of(mamba_inner_registry(), op, out) ||
      names_of(selective_state_update_registry(), op, out) ||
      names_of(causal_conv1d_update_registry(), op, out) ||
      names_of(lm_head_loss_registry(), op, out) || names_of(switch_moe_registry(), op, out);
  return out;
}

}  // namespace mmlab::ops
