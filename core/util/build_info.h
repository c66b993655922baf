// SPDX-License-Identifier: GPL-3.0-or-later
// What a run records about the program that trained it.
#pragma once

#include <string_view>

namespace mmlab {

/// The source tree's git revision (12 hex digits) when this program was last built — read at
/// every build, not when CMake configured, so a run after a later commit records that commit;
/// "unknown" outside a git checkout.
std::string_view git_revision();

}  // namespace mmlab
