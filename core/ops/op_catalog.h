// SPDX-License-Identifier: GPL-3.0-or-later
// Every op with a registry, by the name `train.ops` and the registries spell it.
#pragma once

#include <string>
#include <vector>

namespace mmlab::ops {

/// The ops' names, in a fixed order.
const std::vector<std::string>& op_names();

/// The implementations `op` has in this process (the reference first); empty for an unknown op.
std::vector<std::string> implementation_names(const std::string& op);

}  // namespace mmlab::ops
